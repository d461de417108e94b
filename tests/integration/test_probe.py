"""Build-time probes (closure.trace.probe, closure.trace.inimage) on real programs: what a
probe adds and why, what it never adds, how it fails, and the same in the candidate image
and in a --root tree."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from closure.collect import Options, collect
from closure.errors import BadInput, JobFailed
from closure.image.rootfs import write_rootfs
from closure.image.tarlayer import plan_layer
from closure.model import Reason
from closure.root import Root

CLOSURE = [os.path.join(os.path.dirname(sys.executable), "closure")]
from tests.elf_fixtures import needs_gcc
from tests.probe_fixtures import fixture

pytestmark = [pytest.mark.strace, needs_gcc,
              pytest.mark.skipif(shutil.which("strace") is None or shutil.which("bwrap") is None,
                                 reason="needs strace and bwrap")]
LIBM = "/usr/lib/x86_64-linux-gnu/libm.so.6"


@pytest.fixture(scope="module")
def fx():
    with fixture() as f:
        yield f


def traced(closure, path: str) -> list[Reason]:
    e = closure.entries.get(path)
    return [] if e is None else [r for r in e.reasons if r.kind == "traced"]


def build(targets, **kw):
    return collect(list(targets), Options(**kw))


def test_static_analysis_alone_misses_plugin_and_data(fx):
    c = build([fx.app])
    assert fx.app in c.entries
    assert fx.plugin not in c.entries and fx.data not in c.entries


def test_host_probe_adds_plugin_its_libs_and_data_with_reasons(fx):
    probe = f"{fx.app} hello"
    c = build([fx.app], probes=(probe,))
    assert traced(c, fx.plugin) == [Reason("traced", probe=probe)]
    assert traced(c, fx.data) == [Reason("traced", probe=probe)]
    # the plugin's own DT_NEEDED, which app lacks, came with it through the ELF walk
    assert any(r.kind == "needed" and r.by == fx.plugin for r in c.entries[LIBM].reasons)
    # the probe's shell is the tracer's harness, not part of the program
    assert "/usr/bin/dash" not in c.entries and "/usr/bin/sh" not in c.entries


def test_probe_program_exit_status_fails_the_build_with_stderr_tail(fx):
    with pytest.raises(JobFailed) as e:
        build([fx.app], probes=(f"{fx.app} nosuch",))
    assert e.value.exit_code == 1
    assert "exited 2" in str(e.value) and "libnosuch.so" in str(e.value)


def test_empty_probe_is_bad_input(fx):
    with pytest.raises(BadInput, match="empty command"):
        build([fx.app], probes=("  ",))


def test_exec_of_a_script_brings_its_interpreter(fx):
    c = build([fx.app], probes=(f"{fx.run_app} hello",))
    assert traced(c, fx.run_app) and traced(c, fx.plugin)
    sh = c.entries["/usr/bin/sh"]           # /bin/sh as spelled, through usrmerge's /bin link
    assert any(r.kind == "shebang" and r.by == fx.run_app for r in sh.reasons)
    assert "/usr/bin/dash" in c.entries


def test_listed_directory_is_kept_as_a_directory_not_its_contents(fx):
    plugins = os.path.dirname(fx.plugin)
    c = build(["/usr/bin/ls"], probes=(f"ls {plugins}",))
    assert c.entries[plugins].type == "dir" and traced(c, plugins)
    assert fx.plugin not in c.entries


def test_secrets_are_never_taken_unless_included():
    probe = "cat /etc/shadow"
    c = build(["/usr/bin/cat"], probes=(probe,))
    assert "/etc/shadow" not in c.entries
    assert any("/etc/shadow" in w and "secret" in w for w in c.warnings)
    c = build(["/usr/bin/cat"], probes=(probe,), includes=(("/etc/shadow", "/etc/shadow"),))
    assert traced(c, "/etc/shadow")


def test_in_image_rounds_add_what_the_image_lacks(fx):
    probe = f"{fx.app} hello"
    c = build([fx.app], probes=(probe,), probe_in_image=True)
    for path in (fx.plugin, fx.data, LIBM):
        assert path in c.entries, path
    assert traced(c, fx.plugin) == [Reason("traced", probe=probe)]
    summary = [w for w in c.warnings if "in the image: passed" in w]
    assert len(summary) == 1 and fx.plugin in summary[0]
    rounds = int(summary[0].split("passed in round ")[1].split(";")[0])
    assert 2 <= rounds <= 5        # the plugin first, then its data file (app stops at the first)


def test_in_image_finds_programs_a_shell_script_runs(fx):
    c = build([fx.filter], probes=(fx.filter,), probe_in_image=True)
    assert {"/usr/bin/grep", "/usr/bin/sed"} <= set(c.entries)


def test_in_image_gives_up_when_the_source_lacks_it_too(fx):
    with pytest.raises(JobFailed, match=r"exited 2 in the image after \d round.*libnosuch\.so"):
        build([fx.app], probes=(f"{fx.app} nosuch",), probe_in_image=True)


def test_in_image_round_limit_is_reported(fx):
    with pytest.raises(JobFailed, match=r"after 1 round"):
        build([fx.app], probes=(f"{fx.app} hello",), probe_in_image=True, probe_rounds=1)


def test_probe_on_another_root_runs_inside_it(fx, tmp_path):
    """A --root tree: the probe runs in it (bwrap), so it sees the tree's files, not the
    host's; here a plugin that only the tree has."""
    tree = tmp_path / "tree"
    tree.mkdir()
    seed = build([fx.app], probes=(f"{fx.app} hello",))
    write_rootfs(plan_layer(seed, Root("/")), Root("/"), str(tree), mtime=0)
    only = os.path.join(os.path.dirname(fx.plugin), "libtreeonly.so")
    shutil.copyfile(fx.plugin, str(tree) + only)
    probe = f"{fx.app} treeonly"
    c = build([fx.app], root=Root(str(tree)), probes=(probe,))
    assert traced(c, only) == [Reason("traced", probe=probe)]
    assert c.entries[only].source == only          # an image path inside the tree
    assert fx.plugin not in c.entries              # the host would have had it; not asked


def test_in_image_probe_network_and_trust_are_the_images(tmp_path):
    """An HTTPS fetch from a loopback server whose CA only the image trusts (--ca-cert):
    in the image it passes with --probe-network and fails without network."""
    from closure.recipes import RecipeVars
    from tests.tls import https_server, make_ca
    ca = make_ca(tmp_path / "ca")
    vars = RecipeVars.from_options(ca_certs=[ca.ca_cert])
    with https_server(ca) as port:
        probe = f"curl -sS https://localhost:{port}/"
        c = build(["/usr/bin/curl"], probes=(probe,), recipe_vars=vars, probe_in_image=True,
                  probe_network=True)
        assert any("in the image: passed" in w for w in c.warnings)
        with pytest.raises(JobFailed, match=r"exited 7 in the image.*Failed to connect"):
            build(["/usr/bin/curl"], probes=(probe,), recipe_vars=vars, probe_in_image=True)


def test_in_image_python_import_converges_through_the_source_root(tmp_path):
    """`import yaml` lists site-packages (its finder caches the listing) and never fails
    with ENOENT on yaml/__init__.py in the slim image: the hybrid round traces the same run
    in the full root, and the next round passes in the image."""
    if not os.path.exists("/usr/lib/python3/dist-packages/yaml/__init__.py"):
        pytest.skip("needs python3-yaml")
    out = tmp_path / "py.tar"
    r = subprocess.run(CLOSURE + ["build", "/usr/bin/python3", "--probe-in-image", "--probe",
                                  "python3 -c 'import yaml; print(yaml.safe_load(\"a: 1\"))'", "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    m = re.search(r"in the image: passed in round (\d+)", r.stderr)
    assert m and int(m.group(1)) <= 3, r.stderr

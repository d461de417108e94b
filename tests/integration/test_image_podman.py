"""Built images load and run in podman (gzip and zstd layers), and `verify` runs
commands in podman or bubblewrap and cleans up after itself."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from closure.errors import BadInput, JobFailed, NoRuntime
from closure.image import ImageOptions, write_image
from closure.root import Root
from closure.verify import runtime_trouble, verify
from tests.image_fixtures import PODMAN_FLAGS, curl_closure, need  # noqa: F401

pytestmark = pytest.mark.podman
ROOT = Root("/")
RUN_FLAGS = ["--rm", "--network=none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def podman(*args, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run(["podman", *PODMAN_FLAGS, *args], capture_output=True, text=True)
    assert not check or p.returncode == 0, p.stderr
    return p


def image_ids() -> set[str]:
    return set(podman("images", "-q", "--no-trunc").stdout.split())


@pytest.fixture(scope="module")
def images(tmp_path_factory, curl_closure):
    need("podman")
    d = tmp_path_factory.mktemp("podman")
    out = {}
    for kind in ("gzip", "zstd"):
        opts = ImageOptions(compression=kind, name="closure-test/curl", tag=kind)
        out[kind] = write_image(curl_closure, ROOT, str(d / f"curl-{kind}.tar"), opts)
    out["layout"] = write_image(curl_closure, ROOT, str(d / "curl-layout"), ImageOptions(name="closure-test/curl", cmd=("--version",)))
    return out


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_podman_load_and_run(images, kind):
    result = images[kind]
    loaded = podman("load", "-i", result.path)
    name = re.search(r"Loaded image(?:\(s\))?: (\S+)", loaded.stdout).group(1)
    try:
        assert name.endswith(f"closure-test/curl:{kind}")
        run = podman("run", *RUN_FLAGS, name, "--version")   # the entrypoint is curl
        assert run.stdout.startswith("curl ")
        inspect = podman("image", "inspect", "--format", "{{.Id}}", name)
        assert inspect.stdout.strip() == result.config_digest.split(":")[1]
    finally:
        podman("rmi", "-f", name, check=False)


@pytest.mark.parametrize("which", ["gzip", "zstd", "layout"])
def test_verify_in_podman_leaves_the_store_as_it_was(images, which):
    image_id = images[which].config_digest.split(":")[1]
    assert image_id not in image_ids()
    r = verify(images[which].path, ["curl", "--version"], runtime="podman")
    assert r.runtime == "podman" and r.returncode == 0 and r.stdout.startswith("curl ")
    assert image_id not in image_ids()   # only ours: other test runs may share the store


def test_verify_keeps_an_image_the_user_already_had(images):
    name = podman("load", "-i", images["gzip"].path).stdout.split()[-1]
    try:
        verify(images["gzip"].path, "curl --version", runtime="podman")
        assert podman("image", "exists", name, check=False).returncode == 0
        names = podman("image", "inspect", "--format", "{{json .RepoTags}}", name).stdout
        assert json.loads(names) == [name]   # verify untagged only what it added
    finally:
        podman("rmi", "-f", name, check=False)


@pytest.mark.parametrize("runtime", ["podman", "bwrap"])
def test_verify_failing_command_is_job_failed(images, runtime):
    need("bwrap")
    with pytest.raises(JobFailed) as e:
        verify(images["gzip"].path, "curl --definitely-not-an-option", runtime=runtime)
    assert e.value.exit_code == 1
    with pytest.raises(JobFailed):
        verify(images["gzip"].path, ["/no/such/program"], runtime=runtime)


def test_verify_in_bubblewrap_uses_the_image_config(images):
    need("bwrap")
    r = verify(images["zstd"].path, ["curl", "--version"], runtime="bwrap")
    assert r.runtime == "bwrap" and r.stdout.startswith("curl ")
    r = verify(images["layout"].path, runtime="bwrap")   # the image's Entrypoint + Cmd
    assert r.stdout.startswith("curl ") and r.argv[-2:] == ("/usr/bin/curl", "--version")


def test_without_podman_the_sandbox_runs_it(images, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))   # no podman (nor anything else) on PATH
    r = verify(images["gzip"].path, "curl --version")
    assert r.runtime == "bwrap" and r.stdout.startswith("curl ")


def test_no_runtime_is_exit_2(images, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))   # no podman on PATH, and podman asked for
    with pytest.raises(NoRuntime) as e:
        verify(images["gzip"].path, "curl --version", runtime="podman")
    assert e.value.exit_code == 2 and "podman is not installed" in str(e.value)


def test_flags_from_the_environment(images, monkeypatch):
    monkeypatch.setenv("CLOSURE_PODMAN_FLAGS", "--runtime runc --cgroup-manager=cgroupfs "
                       "--ulimit nofile=1024:1024 --ulimit nproc=1024:1024")
    r = verify(images["gzip"].path, "curl --version", runtime="podman")
    assert "--cgroup-manager=cgroupfs" in r.argv
    monkeypatch.setenv("CLOSURE_PODMAN_FLAGS", "--runtime no-such-runtime")
    with pytest.raises((NoRuntime, JobFailed)):
        verify(images["gzip"].path, "curl --version", runtime="podman")


def test_flags_are_found_and_cached_on_a_fresh_host(images, monkeypatch, tmp_path):
    """No CLOSURE_PODMAN_FLAGS and no cache: verify (runtime auto) finds a flag set that
    works with this podman, runs the command with it, and caches it for the next run."""
    import closure.verify as v
    monkeypatch.delenv("CLOSURE_PODMAN_FLAGS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(v, "_flag_cache", {})
    r = verify(images["gzip"].path, "curl --version")
    assert r.runtime == "podman" and r.returncode == 0 and r.stdout.startswith("curl ")
    doc = json.loads((tmp_path / "closure" / "podman-run-flags.json").read_text())
    assert doc["podman"] == podman("--version").stdout.strip()
    assert tuple(doc["flags"]) in v.CANDIDATE_FLAGS
    assert r.argv[r.argv.index("run") + 3:][:len(doc["flags"])] == tuple(doc["flags"]), r.argv
    assert v.working_podman_flags() == tuple(doc["flags"])


def test_bad_image_path_is_bad_input(tmp_path):
    with pytest.raises(BadInput):
        verify(str(tmp_path / "nothing.tar"), "true")


def test_bad_arguments_are_bad_input(images, monkeypatch):
    with pytest.raises(BadInput, match="network must be none or host"):
        verify(images["gzip"].path, "true", network="bridge")
    with pytest.raises(BadInput, match="no closing quotation"):
        verify(images["gzip"].path, "echo 'unbalanced")
    monkeypatch.setenv("CLOSURE_PODMAN_FLAGS", "--ulimit 'nofile")
    with pytest.raises(BadInput, match="CLOSURE_PODMAN_FLAGS: no closing quotation"):
        verify(images["gzip"].path, "true", runtime="podman")


def test_runtime_trouble_classifier():
    rlimit = "Error: runc: runc create failed: ... error setting rlimit type 7: operation not permitted: OCI permission denied"
    assert runtime_trouble(126, rlimit)
    assert runtime_trouble(125, 'Error: default OCI runtime "crun" not found: invalid argument')
    missing = 'Error: runc: exec: "nosuch": executable file not found in $PATH: OCI runtime attempted to invoke a command that was not found'
    assert not runtime_trouble(127, missing)
    assert not runtime_trouble(1, rlimit)   # the command's own exit status

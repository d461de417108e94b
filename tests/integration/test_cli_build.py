"""`closure build` and `closure verify` as a user runs them."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from closure.image.validate import validate
from tests.image_fixtures import PODMAN_FLAGS, need, oci_validate

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "closure.cli.app"]


def closure(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def curl_tar(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "curl.tar"
    p = closure("build", "/usr/bin/curl", "-o", str(out), "--json")
    assert p.returncode == 0, p.stderr
    return out, json.loads(p.stdout)


def test_json_summary_is_one_document(curl_tar):
    out, doc = curl_tar
    assert doc["format"] == "oci-archive" and doc["format_inferred"] is True
    assert doc["reference"] == "curl:latest" and doc["path"] == str(out)
    assert doc["files"] > 30 and doc["layer_digest"].startswith("sha256:")
    assert validate(str(out)) == [] and oci_validate(out).returncode == 0


def test_text_summary_names_the_run_command(tmp_path):
    no_cache = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    no_cache.pop("CLOSURE_PODMAN_FLAGS", None)
    p = closure("build", "/usr/bin/curl", "-o", str(tmp_path / "img"), "-t", "tools/curl:8",
                "--compression", "zstd", "--cmd", "--version", "--no-recipes", env=no_cache)
    assert p.returncode == 0, p.stderr
    assert "(oci, inferred from -o)" in p.stdout and "zstd-3" in p.stdout
    assert f"podman run --rm oci:{tmp_path / 'img'}:8" in p.stdout, "no flags known: the plain command"
    p = closure("build", "/usr/bin/true", "-o", "t.tar", "--no-recipes", cwd=tmp_path,
                env=dict(no_cache, CLOSURE_PODMAN_FLAGS="--ulimit nofile=1024:1024 --cgroup-manager=cgroupfs"))
    assert p.returncode == 0, p.stderr
    assert ("podman load -i t.tar && podman run --rm --ulimit nofile=1024:1024 "
            "--cgroup-manager=cgroupfs true:latest") in p.stdout


def test_run_command_has_the_flags_verify_found(tmp_path):
    """The flags verify found to work with this podman (its cache) go in the run line."""
    need("podman")
    version = subprocess.run(["podman", "--version"], capture_output=True, text=True).stdout.strip()
    cache = tmp_path / "cache" / "closure" / "podman-run-flags.json"
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({"podman": version, "flags": ["--ulimit", "nproc=1024:1024"]}))
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("CLOSURE_PODMAN_FLAGS", None)
    p = closure("build", "/usr/bin/true", "-o", "fs", "--format", "rootfs", "--no-recipes", cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert f"podman run --rm --ulimit nproc=1024:1024 --rootfs {tmp_path / 'fs'} CMD" in p.stdout
    cache.write_text(json.dumps({"podman": "podman version 0.0.1", "flags": ["--ulimit", "nproc=1024:1024"]}))
    p = closure("build", "/usr/bin/true", "-o", "fs2", "--format", "rootfs", "--no-recipes", cwd=tmp_path, env=env)
    assert f"podman run --rm --rootfs {tmp_path / 'fs2'} CMD" in p.stdout, "flags of another podman: none"


def test_same_manifest_digest_across_dirs_and_times(tmp_path):
    digests = []
    for i, tz in enumerate(["UTC", "America/Lima"]):
        work = tmp_path / f"w{i}"
        work.mkdir()
        env = dict(os.environ, TZ=tz)
        p = closure("build", "/usr/bin/curl", "-o", "curl.tar", "--json", cwd=work,
                    env=env if i == 0 else dict(env, TMPDIR=str(work)))
        assert p.returncode == 0, p.stderr
        digests.append(json.loads(p.stdout)["manifest_digest"])
    assert digests[0] == digests[1]
    assert (tmp_path / "w0/curl.tar").read_bytes() == (tmp_path / "w1/curl.tar").read_bytes()


def test_image_holds_only_what_analyze_lists(curl_tar, tmp_path):
    need("umoci")
    out, _ = curl_tar
    p = closure("analyze", "/usr/bin/curl", "--json", "--package-records")
    assert p.returncode == 0, p.stderr
    listed = {e["path"] for e in json.loads(p.stdout)["entries"]}
    layout = tmp_path / "layout"
    subprocess.run(["tar", "-xf", str(out), "-C", str(tmp_path), "--one-top-level=layout"], check=True)
    bundle = tmp_path / "bundle"
    u = subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)],
                       capture_output=True, text=True)
    assert u.returncode == 0, u.stderr
    rootfs = bundle / "rootfs"
    found = {"/" + os.path.relpath(os.path.join(d, n), rootfs)
             for d, dirs, files in os.walk(rootfs) for n in dirs + files}
    assert found - listed == set()
    assert "/usr/bin/curl" in found and "/etc/ssl/certs/ca-certificates.crt" in found


def closure_on_a_tty(*args, cwd) -> tuple[int, str, str]:
    """Run closure with stderr on a pseudo-terminal (stdout a pipe): (exit, stdout, stderr)."""
    import pty
    import select
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="120")
    p = subprocess.Popen(CLI + list(args), stdout=subprocess.PIPE, stderr=slave, cwd=cwd, env=env)
    os.close(slave)
    err = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        data = b""
        if ready:
            try:
                data = os.read(master, 1 << 16)
            except OSError:    # EIO: the child closed the terminal
                pass
        err += data
        if not data and p.poll() is not None:
            break
    os.close(master)
    return p.wait(), p.stdout.read().decode(), err.decode(errors="replace")


@pytest.mark.strace
def test_progress_on_a_terminal_only_for_phases_over_a_second(tmp_path):
    rc, out, err = closure_on_a_tty("build", "/usr/bin/true", "-o", "quick.tar", "--no-recipes", cwd=tmp_path)
    assert rc == 0 and "closure: built quick.tar" in out
    assert err == "", "a build done within a second shows nothing"
    rc, out, err = closure_on_a_tty("build", "/usr/bin/true", "-o", "slow.tar", "--probe", "sleep 1.6",
                                    cwd=tmp_path)
    assert rc == 0 and "closure: built slow.tar" in out
    assert "analysing /usr/bin/true, running 1 probe" in err and "0:00:01" in err
    assert "closure: built" not in err, "the summary goes to stdout, not through the display"
    rc, out, err = closure_on_a_tty("build", "/usr/bin/true", "-o", "slow2.tar", "--probe", "sleep 1.6",
                                    "--json", cwd=tmp_path)
    assert rc == 0 and json.loads(out)["format"] == "oci-archive" and err == "", "--json: never"


@pytest.mark.podman
def test_podman_load_and_run(curl_tar):
    need("podman")
    out, doc = curl_tar
    load = subprocess.run(["podman", *PODMAN_FLAGS, "load", "-i", str(out)], capture_output=True, text=True)
    assert load.returncode == 0, load.stderr
    name = re.search(r"Loaded image(?:\(s\))?: (\S+)", load.stdout).group(1)
    try:
        run = subprocess.run(["podman", *PODMAN_FLAGS, "run", "--rm", "--network=none",
                              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                              name, "--version"], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith("curl ")
    finally:
        subprocess.run(["podman", *PODMAN_FLAGS, "rmi", "-f", name], capture_output=True)


@pytest.mark.podman
def test_verify_exit_codes(curl_tar, tmp_path):
    out, _ = curl_tar
    ok = closure("verify", str(out), "--", "curl", "--version")
    assert ok.returncode == 0 and ok.stdout.startswith("curl "), ok.stderr
    bad = closure("verify", str(out), "--", "curl", "-sS", "http://does-not-resolve.invalid/")
    assert bad.returncode == 1 and "Could not resolve host" in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("closure: error: command failed")
    # No podman on PATH: verify falls back to closure's own sandbox, and says where it ran.
    none = closure("verify", str(out), "--", "curl", env=dict(os.environ, PATH=str(tmp_path)))
    assert none.returncode == 1 and "in the sandbox" in none.stderr and "curl --help" in none.stderr
    missing = closure("verify", str(tmp_path / "nope.tar"), "--", "true")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


@pytest.mark.podman
def test_build_with_verify(tmp_path):
    ok = closure("build", "/usr/bin/curl", "-o", str(tmp_path / "ok"), "--verify", "curl --version")
    assert ok.returncode == 0 and "verified" in ok.stdout, ok.stderr
    bad = closure("build", "/usr/bin/curl", "-o", str(tmp_path / "bad"), "--verify", "curl --no-such-flag")
    assert bad.returncode == 1 and (tmp_path / "bad/index.json").exists()


def test_level_zero_is_given(tmp_path):
    spec = tmp_path / "closure.toml"
    spec.write_text('targets = "/usr/bin/true"\noutput = "t.tar"\nlevel = 5\nno-recipes = true\n')
    p = closure("build", "-f", str(spec), "--level", "0", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["level"] == 0, "the command line's 0 overrides the spec's 5"


def test_spec_file_and_overrides(tmp_path):
    spec = REPO / "sample_images/curl/closure.toml"
    p = closure("build", "-f", str(spec), "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["path"] == str(tmp_path / "curl.tar") and doc["reference"] == "closure/curl:latest"
    p = closure("build", "-f", str(spec), "-o", "other", "-t", "x:1", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["format"] == "oci" and doc["reference"] == "x:1"


@pytest.mark.parametrize("args,message", [
    (["/usr/bin/curl", "-o", "x.zip"], "cannot tell the output format"),
    (["/usr/bin/curl"], "no output"),
    (["-o", "x.tar"], "nothing to build"),
    (["/no/such/program", "-o", "x.tar"], "no such file"),
    (["/usr/bin/curl", "-o", "/no/such/dir/x.tar"], "does not exist"),
    (["/usr/bin/curl", "-o", "x.tar", "--compression", "lz4"], "unknown compression"),
    (["/usr/bin/curl", "-o", "x.tar", "-t", "Bad:Name"], "invalid image name"),
    (["/usr/bin/curl", "-o", "x.tar", "--include", "relative"], "absolute paths"),
    (["/usr/bin/curl", "-o", "x.tar", "--label", "novalue"], "KEY=VALUE"),
    (["-f", "/no/such/spec.toml"], "spec file /no/such/spec.toml: no such file"),
    (["/usr/bin/curl", "-o", "x.tar", "--cmd", "echo 'unbalanced"], "--cmd: no closing quotation"),
    (["/usr/bin/curl", "-o", "x.tar", "--verify", "curl 'x"], "--verify: no closing quotation"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    p = closure("build", *args, cwd=tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert message in p.stderr and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert os.listdir(tmp_path) == []


def test_bad_source_date_epoch(tmp_path):
    p = closure("build", "/usr/bin/curl", "-o", "x.tar", cwd=tmp_path,
                env=dict(os.environ, SOURCE_DATE_EPOCH="yesterday"))
    assert p.returncode == 2 and "SOURCE_DATE_EPOCH" in p.stderr and os.listdir(tmp_path) == []


def test_existing_dir_needs_force(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img/file").write_text("x")
    p = closure("build", "/usr/bin/curl", "-o", "img", cwd=tmp_path)
    assert p.returncode == 2 and "--force" in p.stderr
    p = closure("build", "/usr/bin/curl", "-o", "img", "--force", cwd=tmp_path)
    assert p.returncode == 0 and not (tmp_path / "img/file").exists()


def test_cold_and_warm_package_index_give_one_digest(tmp_path):
    """The dpkg list index cache never changes an image: two builds at once on a cold
    cache and one on the warm cache it left give the same manifest digest."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    args = [*CLI, "build", "/usr/bin/curl", "--json", "-o"]
    env["PYTHONPATH"] = str(REPO)
    both = [subprocess.Popen([*args, str(tmp_path / f"c{i}.tar")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
    docs = []
    for p in both:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        docs.append(json.loads(out))
    index = list((tmp_path / "cache/closure/dpkg-index").iterdir())
    assert len(index) == 1 and not [n for n in os.listdir(index[0].parent) if n.startswith(".")], \
        "one whole index file, no temporary left"
    warm = closure("build", "/usr/bin/curl", "--json", "-o", str(tmp_path / "w.tar"), env=env)
    assert warm.returncode == 0, warm.stderr
    docs.append(json.loads(warm.stdout))
    assert len({d["manifest_digest"] for d in docs}) == 1


def test_summary_does_not_run_podman_when_verify_recorded_its_binary(tmp_path):
    """The run line's flags come from verify's record of this very podman binary (path,
    size, mtime): printing the summary starts no podman process."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    marker = tmp_path / "ran"
    fake = bindir / "podman"
    fake.write_text(f"#!/bin/sh\necho ran >> {marker}\necho 'podman version 9.9.9'\n")
    fake.chmod(0o755)
    st = os.stat(fake)
    cache = tmp_path / "cache" / "closure" / "podman-run-flags.json"
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({"podman": "podman version 9.9.9", "flags": ["--ulimit", "nproc=1024:1024"],
                                 "binary": f"{fake}:{st.st_size}:{st.st_mtime_ns}"}))
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), PATH=f"{bindir}:{os.environ['PATH']}")
    env.pop("CLOSURE_PODMAN_FLAGS", None)
    p = closure("build", "/usr/bin/true", "-o", "t.tar", "--no-recipes", cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert "podman run --rm --ulimit nproc=1024:1024 true:latest" in p.stdout
    assert not marker.exists(), "podman was not run"
    fake.write_text(fake.read_text() + "# changed\n")   # another binary: ask it, once
    p = closure("build", "/usr/bin/true", "-o", "t2.tar", "--no-recipes", cwd=tmp_path, env=env)
    assert p.returncode == 0 and marker.read_text().count("ran") == 1


def test_created_sets_the_config_time_only(tmp_path):
    """--created changes the config's created (and so the digest), never the layer: file
    times stay SOURCE_DATE_EPOCH."""
    from closure.image.read import open_image
    docs = {}
    for name, extra in (("a", []), ("b", ["--created", "2023-11-14T22:13:20Z"])):
        p = closure("build", "/usr/bin/true", "--no-recipes", "-o", str(tmp_path / f"{name}.tar"), "--json", *extra)
        assert p.returncode == 0, p.stderr
        docs[name] = json.loads(p.stdout)
    assert docs["a"]["layer_digest"] == docs["b"]["layer_digest"]
    assert docs["a"]["manifest_digest"] != docs["b"]["manifest_digest"]
    img = open_image(str(tmp_path / "b.tar"))
    assert img.config["created"] == "2023-11-14T22:13:20Z"
    p = closure("build", "/usr/bin/true", "-o", str(tmp_path / "c.tar"), "--created", "soon")
    assert p.returncode == 2 and "--created" in p.stderr and not (tmp_path / "c.tar").exists()


def test_size_gates_fail_the_build_before_writing(tmp_path):
    out = tmp_path / "g.tar"
    p = closure("build", "/usr/bin/curl", "-o", str(out), "--max-size", "1MB")
    assert p.returncode == 1 and "more than --max-size" in p.stderr and not out.exists()
    p = closure("build", "/usr/bin/curl", "-o", str(out), "--max-files", "10")
    assert p.returncode == 1 and "more than --max-files 10" in p.stderr and not out.exists()
    p = closure("build", "/usr/bin/curl", "-o", str(out), "--max-size", "200MB", "--max-files", "5000")
    assert p.returncode == 0, p.stderr

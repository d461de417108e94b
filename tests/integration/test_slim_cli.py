"""`closure slim` as a user runs it: hostile images refused (exit 2, nothing written outside
the temporary root), an Alpine-like musl image slimmed and run in podman, `podman save`
archives (docker-archive with several tags) read, the source config kept."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from closure.image.read import open_image
from closure.image.validate import validate
from tests.image_fixtures import oci_validate
from tests.slim_images import (PODMAN, d, f, hard, loaded, musl_image, podman_run, snapshot, sym,
                               tar_of, write_oci)

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "closure.cli.app"]


def closure(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, env=env)


def one_error_line(p: subprocess.CompletedProcess) -> str:
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("closure: error: "), p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


# -- hostile images ------------------------------------------------------------------------

CANARY = f"closure-slim-evil-{os.getpid()}"
HOSTILE = {
    "dotdot": [f("../../" + CANARY, b"evil")],
    "absolute": [f("/tmp/" + CANARY, b"evil")],
    "symlink-to-etc-then-through-it": [sym("etc-link", "/etc"), f(f"etc-link/{CANARY}", b"evil")],
    "hardlink-to-etc-passwd": [hard("stolen", "/etc/passwd")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_image_exit_2_and_nothing_outside(tmp_path, case):
    base = tar_of([d("bin"), f("bin/app", b"#!/bin/sh\n", 0o755), d("etc"), f("etc/passwd", b"root:x:0:0::/:/bin/sh\n")])
    img = write_oci(tmp_path / "hostile.tar", [base, tar_of(HOSTILE[case])], entrypoint=["/bin/app"])
    work = tmp_path / "work"
    work.mkdir()
    before = snapshot(tmp_path)
    passwd = os.stat("/etc/passwd")
    p = closure("slim", img, "-o", tmp_path / "out.tar", "--tmpdir", work)
    assert p.returncode == 2, p.stderr
    line = one_error_line(p)
    assert "refused entry" in line and "layer 2" in line
    assert snapshot(tmp_path) == before, "no output, no temp root left, nothing beside them"
    assert list(work.iterdir()) == []
    for where in ("/etc", "/tmp", str(tmp_path.parent), str(tmp_path.parent.parent)):
        assert not os.path.lexists(os.path.join(where, CANARY))
    now = os.stat("/etc/passwd")
    assert (now.st_ino, now.st_nlink, now.st_mtime_ns) == (passwd.st_ino, passwd.st_nlink, passwd.st_mtime_ns)


@pytest.mark.parametrize("args,match", [
    (["nope.tar"], "no such image"),
    (["junk.tar"], "not an image"),
    (["two.tar"], "holds 2 images"),
    (["two.tar", "--ref", "c:3"], "no image named 'c:3'"),
    (["nocmd.tar"], "no Entrypoint or Cmd"),
    (["missing-prog.tar"], "not in the image"),
    (["two.tar:a:1", "--max-unpacked", "lots"], "--max-unpacked"),
    (["badcfg.tar"], "Entrypoint is not a list of strings"),
    (["two.tar:a:1", "--report", "/"], "output is a directory"),            # before the work
    (["two.tar:a:1", "--report", "/proc/closure-report.json"], "cannot write"),
    (["two.tar:a:1", "--tmpdir", "/no/such/dir"], "--tmpdir /no/such/dir: no such directory"),
    (["two.tar:a:1", "--probe", " "], "--probe: empty command"),
])
def test_bad_input_exit_2(tmp_path, args, match):
    (tmp_path / "junk.tar").write_bytes(b"junk" * 300)
    layer = tar_of([d("bin"), f("bin/app", b"#!/bin/sh\n", 0o755)])
    write_oci(tmp_path / "nocmd.tar", [layer])
    write_oci(tmp_path / "missing-prog.tar", [layer], cmd=["prog"])
    write_oci(tmp_path / "badcfg.tar", [layer], entrypoint="/bin/app")
    two = tmp_path / "two.tar"
    with tarfile.open(two, "w") as t:        # two images in one OCI archive
        a = write_oci(tmp_path / "a", [layer], ref="a:1", archive=False, cmd=["/bin/app"])
        b = write_oci(tmp_path / "b", [layer], ref="b:2", archive=False, cmd=["/bin/app"])
        index = json.loads((a / "index.json").read_text())
        index["manifests"] += json.loads((b / "index.json").read_text())["manifests"]
        (a / "index.json").write_text(json.dumps(index))
        for blob in (b / "blobs/sha256").iterdir():
            os.replace(blob, a / "blobs/sha256" / blob.name)
        for name in ("oci-layout", "index.json", "blobs"):
            t.add(a / name, arcname=name)
    p = closure("slim", *[tmp_path / args[0]] + args[1:], "-o", tmp_path / "out.tar")
    assert p.returncode == 2
    assert match in one_error_line(p)
    assert not (tmp_path / "out.tar").exists()


# -- a musl image, end to end -----------------------------------------------------------------

@pytest.fixture(scope="module")
def alpine(tmp_path_factory) -> Path:
    return musl_image(tmp_path_factory.mktemp("musl"), env=["PATH=/usr/bin:/bin", "GREETING=1"],
                      user="1000:1000", workdir="/opt", ports=["8080/tcp"], labels={"org.example": "x"})


@pytest.mark.strace
def test_musl_image_slimmed_with_probe(tmp_path, alpine):
    out, report = tmp_path / "slim.tar", tmp_path / "report.json"
    p = closure("slim", alpine, "-o", out, "--probe", "hello", "--report", report)
    assert p.returncode == 0, p.stderr
    assert "alpine-like:3" in p.stdout and "smaller" in p.stdout
    doc = json.loads(report.read_text())
    kept = {e["path"]: e for e in doc["kept"]}
    assert kept["/lib/ld-musl-x86_64.so.1"]["type"] == "file"
    assert "/opt/vendor/lib/libvendor.so" in kept, "found through /etc/ld-musl-x86_64.path"
    assert "/etc/greeting" in kept and kept["/etc/greeting"]["reasons"] == [{"kind": "traced", "probe": "hello"}]
    for gone in ("/usr/share/junk/blob", "/usr/lib/libunused.so", "/usr/bin/other", "/etc/unrelated.conf"):
        assert gone not in kept
    assert doc["before"]["files"] == 10 and doc["after"]["files"] < doc["before"]["files"]
    assert doc["removed_dirs"][0]["path"] == "/usr/share/junk"
    assert validate(str(out)) == [] and oci_validate(out).returncode == 0

    with open_image(str(out)) as img, open_image(str(alpine)) as src:
        cfg = img.config["config"]
        assert cfg["Entrypoint"] == ["hello"] and cfg["User"] == "1000:1000" and cfg["WorkingDir"] == "/opt"
        assert cfg["ExposedPorts"] == {"8080/tcp": {}} and cfg["Env"][:2] == ["PATH=/usr/bin:/bin", "GREETING=1"]
        assert cfg["Labels"]["org.example"] == "x"
        assert cfg["Labels"]["org.closure.source.digest"] == src.manifest_digest
        assert cfg["Labels"]["org.closure.source.ref"] == "alpine-like:3"
        assert "alpine-like:3-slim" in img.names

    with loaded(out) as name:
        run = podman_run(name)
        assert run.returncode == 0, run.stderr
        assert run.stdout == "hello from musl 7: alpine-like\n"


@pytest.mark.strace
def test_without_the_probe_the_data_file_is_gone(tmp_path, alpine):
    out = tmp_path / "noprobe.tar"
    p = closure("slim", alpine, "-o", out, "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)                       # --json: one document on stdout
    assert "/etc/greeting" not in {e["path"] for e in doc["kept"]}


def test_failing_probe_is_exit_1(tmp_path, alpine):
    p = closure("slim", alpine, "-o", tmp_path / "x.tar", "--probe", "hello | cat")
    assert p.returncode == 1
    assert "exited 127" in one_error_line(p)
    assert not (tmp_path / "x.tar").exists()


# -- what podman save writes ---------------------------------------------------------------------

@pytest.mark.podman
@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive", "docker-dir"])
def test_podman_save_formats(tmp_path, alpine, fmt):
    with loaded(alpine) as name:
        tagged = subprocess.run(PODMAN + ["tag", name, "localhost/hello:two"], capture_output=True, text=True)
        assert tagged.returncode == 0, tagged.stderr
        try:
            saved = tmp_path / ("saved" if fmt == "docker-dir" else "saved.tar")
            extra = ["-m"] if fmt == "docker-archive" else []
            refs = [name, "localhost/hello:two"] if fmt == "docker-archive" else [name]
            s = subprocess.run(PODMAN + ["save", "--format", fmt, *extra, "-o", str(saved), *refs],
                               capture_output=True, text=True)
            assert s.returncode == 0, s.stderr
        finally:
            subprocess.run(PODMAN + ["rmi", "localhost/hello:two"], capture_output=True)
    args = ["--ref", "hello:two"] if fmt == "docker-archive" else []
    out = tmp_path / "out.oci"
    p = closure("slim", saved, *args, "-o", out, "--json", "--no-recipes")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["source"]["format"] == fmt
    if fmt == "docker-archive":
        assert doc["source"]["names"] == ["localhost/alpine-like:3", "localhost/hello:two"]
        assert doc["output"]["reference"] == "localhost/hello:two-slim"
    assert "/usr/bin/hello" in {e["path"] for e in doc["kept"]}
    assert validate(str(out)) == []


@pytest.mark.strace
def test_include_exclude_and_same_digest_twice(tmp_path, alpine):
    digests = []
    for i in (1, 2):
        work = tmp_path / f"w{i}"
        work.mkdir()
        p = closure("slim", alpine, "-o", work / "out.oci", "--probe", "hello", "--include", "/usr/share/junk",
                    "--exclude", "/etc/greeting", "--tmpdir", work, "--json")
        assert p.returncode == 0, p.stderr
        doc = json.loads(p.stdout)
        kept = {e["path"] for e in doc["kept"]}
        assert "/usr/share/junk/blob" in kept and "/etc/greeting" not in kept
        digests.append(doc["output"]["manifest_digest"])
    assert digests[0] == digests[1], "same source, same options: same image"
    p = closure("slim", alpine, "-o", tmp_path / "x.oci", "--include", "/not/there")
    assert p.returncode == 2 and "/not/there" in one_error_line(p)


def test_size_gates_fail_before_anything_is_written(tmp_path, alpine):
    """--max-size / --max-files: a CI gate, exit 1 naming the limit, no output."""
    out = tmp_path / "gated.tar"
    p = closure("slim", alpine, "-o", out, "--max-size", "1K")
    assert p.returncode == 1 and "more than --max-size 1.0 KiB" in one_error_line(p) and not out.exists()
    p = closure("slim", alpine, "-o", out, "--max-files", "1")
    assert p.returncode == 1 and "more than --max-files 1" in one_error_line(p) and not out.exists()
    p = closure("slim", alpine, "-o", out, "--max-size", "100M", "--max-files", "1000")
    assert p.returncode == 0, p.stderr
    p = closure("slim", alpine, "-o", tmp_path / "bad.tar", "--max-size", "lots")
    assert p.returncode == 2 and "--max-size" in one_error_line(p)

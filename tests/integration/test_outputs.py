"""Outputs are whole or absent: an existing -o is replaced only with --force; two builds
racing for one -o leave one complete, valid image; a full disk is one line and exit 1 with
nothing left; an interrupted slim or report leaves nothing at its destination or in
$TMPDIR; work dirs of SIGKILLed runs are removed by a later run once provably dead."""
from __future__ import annotations

import concurrent.futures
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.image_fixtures import oci_validate
from tests.slim_images import f, tar_of, write_oci

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "closure.cli.app"]
ENV = dict(os.environ, PYTHONPATH=str(REPO))
OLD = time.time() - 3600


def closure(*args, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=300,
                          env={**ENV, **(env or {})}, **kw)


def test_an_existing_file_needs_force(tmp_path):
    out = tmp_path / "img.tar"
    out.write_bytes(b"someone's file")
    p = closure("build", "/usr/bin/true", "-o", str(out))
    assert p.returncode == 2 and "--force" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert out.read_bytes() == b"someone's file"
    p = closure("build", "/usr/bin/true", "-o", str(out), "--force")
    assert p.returncode == 0, p.stderr
    assert oci_validate(out).returncode == 0


def _skopeo_ok(path: Path) -> None:
    if shutil.which("skopeo") is None:
        return
    transport = "oci" if path.is_dir() else "oci-archive"
    p = subprocess.run(["skopeo", "inspect", f"{transport}:{path}"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def _digest(path: Path) -> str:
    index = json.loads((path / "index.json").read_text()) if path.is_dir() else None
    if index is None:
        import tarfile
        with tarfile.open(path) as t:
            index = json.load(t.extractfile("index.json"))
    return index["manifests"][0]["digest"]


@pytest.mark.parametrize("name", ["img.tar", "img.oci"])
def test_two_builds_racing_for_one_output(tmp_path, name):
    """10 rounds: `true` and `env` built at once to the same -o (--force): the result is
    one of the two images, whole (both validators), never a mix; no staging dir is left."""
    refs = {}
    for prog in ("true", "env"):
        ref = tmp_path / f"ref-{prog}-{name}"
        assert closure("build", f"/usr/bin/{prog}", "-o", str(ref)).returncode == 0
        refs[_digest(ref)] = prog
    out = tmp_path / "race" / name
    out.parent.mkdir()
    seen = set()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(10):
            runs = list(pool.map(lambda prog: closure("build", f"/usr/bin/{prog}", "-o", str(out), "--force"),
                                 ("true", "env")))
            assert all(p.returncode == 0 for p in runs), [p.stderr for p in runs]
            v = oci_validate(out)
            assert v.returncode == 0, v.stdout + v.stderr
            _skopeo_ok(out)
            seen.add(refs[_digest(out)])
            assert os.listdir(out.parent) == [name], "no staging dir left"
    assert seen <= {"true", "env"}


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_disk_is_one_line_exit_1_and_leaves_nothing(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(small)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        p = closure("build", "/usr/bin/curl", "-o", str(small / "curl.tar"), "--compression", "none")
        assert p.returncode == 1, p.stderr
        assert p.stderr.startswith("closure: error: no space left") and p.stderr.count("\n") == 1, p.stderr
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)])


# -- work dirs of killed runs ---------------------------------------------------------------

def _stale(parent: Path, name: str) -> Path:
    d = parent / name
    (d / "deep" / "er").mkdir(parents=True)
    (d / "deep" / "er" / "blob").write_bytes(b"x" * 1000)
    os.chmod(d / "deep", 0o555)
    for p in (d / "deep" / "er", d / "deep", d):
        os.utime(p, (OLD, OLD))
    return d


def test_stale_staging_next_to_the_output_is_swept(tmp_path):
    dead = _stale(tmp_path, ".img.tar.999999-abcd.closure-tmp")
    live = _stale(tmp_path, ".other.tar.1-efgh.closure-tmp")
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               "fd = os.open(sys.argv[1], os.O_RDONLY)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
                               "print('locked', flush=True)\ntime.sleep(120)", str(live)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        p = closure("build", "/usr/bin/true", "-o", str(tmp_path / "img.tar"))
        assert p.returncode == 0, p.stderr
        assert not dead.exists(), "a dead run's staging dir is removed"
        assert live.exists(), "a live run's (locked) staging dir is kept"
    finally:
        holder.kill()
        holder.wait()
        os.chmod(live / "deep", 0o755)


@pytest.fixture(scope="module")
def big_image(tmp_path_factory):
    """A slim source whose one layer takes seconds to unpack (300 MB, uncompressed)."""
    d = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else tmp_path_factory.mktemp("big")
    d = Path(tempfile_dir(d))
    img = write_oci(d / "big.tar", [tar_of([f(f"data/{i}", b"\0" * (30 << 20)) for i in range(10)])],
                    compression="none", cmd=["/x"])
    yield img
    shutil.rmtree(d, ignore_errors=True)


def tempfile_dir(base: Path) -> str:
    import tempfile
    return tempfile.mkdtemp(prefix="closure-test-big-", dir=base)


def _start(args, tmpdir: Path) -> subprocess.Popen:
    return subprocess.Popen(CLI + args, stderr=subprocess.PIPE, text=True, env={**ENV, "TMPDIR": str(tmpdir)})


def _wait_for_unpacking(proc: subprocess.Popen, tmpdir: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        roots = list(tmpdir.glob("closure-slim-*/rootfs/data/*"))
        if roots:
            return
        time.sleep(0.02)
    raise AssertionError(f"slim never started unpacking: {proc.poll()} {proc.stderr.read() if proc.poll() is not None else ''}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_interrupted_slim_leaves_nothing(tmp_path, big_image, sig):
    tmpdir, out = tmp_path / "tmp", tmp_path / "out"
    tmpdir.mkdir()
    out.mkdir()
    proc = _start(["slim", str(big_image), "-o", str(out / "slim.tar")], tmpdir)
    _wait_for_unpacking(proc, tmpdir)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert list(out.iterdir()) == [] and list(tmpdir.iterdir()) == []


def test_sigkilled_slim_root_is_swept_by_the_next_run(tmp_path, big_image):
    tmpdir, out = tmp_path / "tmp", tmp_path / "out"
    tmpdir.mkdir()
    out.mkdir()
    proc = _start(["slim", str(big_image), "-o", str(out / "slim.tar")], tmpdir)
    _wait_for_unpacking(proc, tmpdir)
    proc.kill()
    proc.wait(timeout=60)
    left = list(tmpdir.iterdir())
    assert len(left) == 1 and left[0].name.startswith(f"closure-slim-{proc.pid}-"), left
    for dirpath, _, _ in os.walk(left[0]):
        os.utime(dirpath, (OLD, OLD))
    small = write_oci(tmp_path / "small.tar", [tar_of([f("y", b"1")])], cmd=["/x"])
    p = closure("slim", str(small), "-o", str(out / "s.tar"), env={"TMPDIR": str(tmpdir)})
    assert p.returncode == 2 and "not in the image" in p.stderr     # no /x: but it unpacked
    assert list(tmpdir.iterdir()) == [], "the killed run's root is removed"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_interrupted_report_leaves_nothing(tmp_path, big_image, sig):
    out = tmp_path / "out"
    out.mkdir()
    proc = _start(["report", str(big_image), "-o", str(out / "r.html")], tmp_path)
    time.sleep(0.8)     # past start-up: reading the 300 MB layer
    assert proc.poll() is None, "report ended before it could be interrupted"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert list(out.iterdir()) == []

"""Files the user names, or a --root holds, that would hang or exhaust a reader: a FIFO
(spec, --ca-cert, the root's ld.so, ld.so.cache, ld.so.conf), /dev/zero, a directory, a
10 MB spec, a TOML nesting bomb. Each: exit 2, one line naming the file, in seconds."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "closure.cli.app"]
LDSO = "lib64/ld-linux-x86-64.so.2"


def closure(*args, cwd=None) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    p = subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=60, cwd=cwd,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    return p, time.monotonic() - start


def one_line_exit_2(p: subprocess.CompletedProcess, took: float, want: str) -> None:
    assert p.returncode == 2, p.stderr[-2000:]
    assert p.stderr.startswith("closure: error: ") and p.stderr.count("\n") == 1, p.stderr[-2000:]
    assert want in p.stderr, p.stderr
    assert took < 30


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad-files")
    os.mkfifo(d / "fifo")
    (d / "big.toml").write_text('targets = "' + "a" * (10 << 20) + '"\n')
    (d / "bomb.toml").write_text("targets = " + "[" * 50000 + "]" * 50000 + "\n")
    (d / "dir").mkdir()
    return d


@pytest.mark.parametrize("name,want", [
    ("fifo", "not a regular file"), ("/dev/zero", "not a regular file"), ("dir", "is a directory"),
    ("big.toml", "more than the 1048576"), ("bomb.toml", "nested too deeply")])
def test_bad_spec_files(files, tmp_path, name, want):
    p, took = closure("build", "-f", str(files / name), "-o", str(tmp_path / "out.tar"))
    one_line_exit_2(p, took, want)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["fifo", "/dev/zero"])
def test_bad_ca_cert(files, tmp_path, name):
    p, took = closure("build", "/usr/bin/true", "--ca-cert", str(files / name), "-o", str(tmp_path / "out.tar"))
    one_line_exit_2(p, took, "not a regular file")
    assert list(tmp_path.iterdir()) == []


def _root_with_fifo(tmp: Path, fifo: str) -> Path:
    root = tmp / "root"
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy("/usr/bin/true", root / "usr/bin/true")
    for sub in ("lib64", "etc", "lib/x86_64-linux-gnu"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    if fifo != LDSO:
        shutil.copy(os.path.realpath("/" + LDSO), root / LDSO)
    os.mkfifo(root / fifo)
    return root


@pytest.mark.parametrize("fifo", [LDSO, "etc/ld.so.cache", "etc/ld.so.conf"])
def test_root_with_fifos_where_the_loader_reads(tmp_path, fifo):
    root = _root_with_fifo(tmp_path, fifo)
    p, took = closure("analyze", "--root", str(root), "/usr/bin/true")
    one_line_exit_2(p, took, "not a regular file")
    assert "/" + fifo in p.stderr


def _as_nobody() -> list[str] | None:
    """A command prefix running closure as the unprivileged user `nobody` (the system
    python with this venv's packages: the venv's own interpreter may sit under /root)."""
    import glob
    import shutil as sh
    site = glob.glob(str(REPO / ".venv/lib/python3.*/site-packages"))
    py = "/usr/bin/python3"
    if os.geteuid() != 0 or sh.which("runuser") is None or not site or not os.access(py, os.X_OK):
        return None
    env = ["env", "HOME=/tmp", f"PYTHONPATH={REPO}:{site[0]}"]
    probe = subprocess.run(["runuser", "-u", "nobody", "--", *env, py, "-c", "import closure.cli.app, zstandard, isal"],
                           capture_output=True, text=True, cwd="/")
    return ["runuser", "-u", "nobody", "--", *env, py, "-m", "closure.cli.app"] if probe.returncode == 0 else None


@pytest.fixture
def open_tmp():
    """A temp dir `nobody` can reach (pytest's own are 0700)."""
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="closure-nobody-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_a_non_root_user_gets_closures_own_errors(open_tmp):
    prefix = _as_nobody()
    if prefix is None or not os.access(REPO, os.R_OK | os.X_OK):
        pytest.skip("needs root, runuser and a python3 that `nobody` can run closure with")
    tmp_path = open_tmp
    shutil.copy("/usr/bin/true", tmp_path / "private")
    (tmp_path / "private").chmod(0o700)
    (tmp_path / "ro").mkdir(mode=0o555)
    cases = [(["analyze", str(tmp_path / "private")], "cannot read"),
             (["build", str(tmp_path / "private"), "-o", "/tmp/never.tar"], "cannot read"),
             (["build", "/usr/bin/true", "-o", str(tmp_path / "ro/x.tar")], "cannot write in the output directory"),
             (["build", "/usr/bin/true", "--probe", "true", "-o", str(tmp_path / "ro/x.tar")],
              "cannot write in the output directory")]
    for args, want in cases:
        p = subprocess.run(prefix + args, capture_output=True, text=True, timeout=120, cwd="/")
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.startswith("closure: error: ") and p.stderr.count("\n") == 1, (args, p.stderr)
        assert want in p.stderr and "strace" not in p.stderr, (args, p.stderr)
    assert list((tmp_path / "ro").iterdir()) == []


def test_nested_analysis_json(files, tmp_path):
    nest = tmp_path / "nest.json"
    nest.write_text("[" * 200000 + "]" * 200000)
    p, took = closure("diff", str(nest), str(nest))
    one_line_exit_2(p, took, "nested too deeply")


@pytest.mark.parametrize("kind", ["bomb", "fifo"])
def test_bad_user_recipes(files, tmp_path, kind):
    d = tmp_path / "recipes"
    d.mkdir()
    if kind == "fifo":
        os.mkfifo(d / "x.toml")
    else:
        shutil.copy(files / "bomb.toml", d / "x.toml")
    p, took = closure("build", "/usr/bin/true", "--recipes", str(d), "-o", str(tmp_path / "out.tar"))
    one_line_exit_2(p, took, "nested too deeply" if kind == "bomb" else "not a regular file")
    assert not (tmp_path / "out.tar").exists()

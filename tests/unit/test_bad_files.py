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

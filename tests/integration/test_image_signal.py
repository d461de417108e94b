"""Killed mid-build, nothing appears at -o; SIGTERM also removes the staging directory."""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import pytest

_BUILD = """
import glob, os, sys
from closure.image import ImageOptions, write_image
from closure.model import Closure, Entry, Reason
from closure.root import Root
c = Closure(targets=[])
for path in sorted(glob.glob("/usr/lib/x86_64-linux-gnu/*.so*") + glob.glob("/usr/lib/*/*.so*")):
    if os.path.isfile(path) and not os.path.islink(path):
        c.add(Entry(path, "file", mode=0o644, source=path), Reason("include"))
# Slow compression on ~400 MB: many seconds of work to interrupt.
write_image(c, Root("/"), sys.argv[1], ImageOptions(compression="zstd", level=19, force=True))
"""


def _start_and_kill(out: str, sig: int) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([sys.executable, "-c", _BUILD, out], stderr=subprocess.PIPE, text=True)
    parent = os.path.dirname(out)
    deadline = time.monotonic() + 60
    partial = []
    while time.monotonic() < deadline and proc.poll() is None:
        partial = glob.glob(os.path.join(parent, ".*.closure-tmp", "layout", "blobs", "sha256", ".layer.partial"))
        if partial and os.path.getsize(partial[0]) > 0:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"build ended before it could be interrupted: {proc.stderr.read()}"
    assert partial, "no layer was being written"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return proc, os.listdir(parent)


@pytest.mark.slow
def test_sigterm_leaves_nothing(tmp_path):
    out = str(tmp_path / "big.tar")
    proc, left = _start_and_kill(out, signal.SIGTERM)
    assert proc.returncode != 0
    assert left == []   # no big.tar, no staging litter


@pytest.mark.slow
def test_sigkill_leaves_nothing_at_the_output(tmp_path):
    out = str(tmp_path / "big.tar")
    proc, left = _start_and_kill(out, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert "big.tar" not in left
    assert all(name.startswith(".big.tar.") and name.endswith(".closure-tmp") for name in left)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_existing_output_is_kept_when_the_build_is_killed(tmp_path, sig):
    """An old image at -o is replaced only on success: killed mid-layer, the old one stays."""
    out = tmp_path / "big.tar"
    out.write_bytes(b"the old image")
    proc, left = _start_and_kill(str(out), sig)
    assert proc.returncode != 0
    assert out.read_bytes() == b"the old image"
    assert "big.tar" in left

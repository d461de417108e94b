"""Memory of a big build: 100 programs of /usr/bin in one image stay under 150 MB of peak
resident memory (the closure is data; file bytes are streamed, never held)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIMIT_MB = 150


def programs(limit: int = 100) -> list[str]:
    out = []
    for name in sorted(os.listdir("/usr/bin")):
        p = os.path.join("/usr/bin", name)
        if os.path.isfile(p) and not os.path.islink(p) and os.access(p, os.X_OK):
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(p)
        if len(out) == limit:
            break
    return out


def test_a_100_program_build_stays_under_150_mb(tmp_path):
    progs = programs()
    if len(progs) < 100:
        pytest.skip(f"only {len(progs)} ELF programs in /usr/bin")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # The build runs as the child of a small Python, which reports its children's peak:
    # a process exec'd straight from pytest inherits pytest's own peak RSS as its
    # ru_maxrss (the kernel keeps the larger across exec), and after a few in-process
    # builds earlier in the suite, that is pytest's number, not the build's.
    measure = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL); "
               "sys.stdout.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(rc)")
    with open(tmp_path / "stderr", "w+b") as errf:   # a file: warnings never fill a pipe
        p = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "closure.cli.app", "build",
                            *progs, "-o", str(tmp_path / "many.tar")], stdout=subprocess.PIPE, stderr=errf, env=env)
        errf.seek(0)
        err = errf.read().decode(errors="replace")
    assert p.returncode == 0, err[-2000:]
    rss_mb = int(p.stdout) / 1024
    from tests.measured import MEASURED
    MEASURED.append(f"100-program build: peak RSS {rss_mb:.0f} MB (limit {LIMIT_MB})")
    assert rss_mb < LIMIT_MB

"""Interleaved timing for the benchmarks: every case runs once per round, in an order that
rotates each round, so a machine that speeds up or slows down (other load, page cache,
CPU frequency) weighs on every case alike; the median of the rounds is reported."""
from __future__ import annotations

import os
import statistics
import subprocess
import time
from typing import Callable


def run(cmd: list[str], env: dict | None = None) -> None:
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env=None if env is None else {**os.environ, **env})


def interleaved(cases: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """name -> median seconds over `rounds` interleaved rounds (after one warm-up each)."""
    names = list(cases)
    for name in names:
        cases[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - t)
    return {n: statistics.median(v) for n, v in times.items()}


def peak_rss_mb(cmd: list[str]) -> float:
    """Peak resident memory of a command (its own process), in MB."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return usage.ru_maxrss / 1024


def row(label: str, ours: float, peer: float | None = None, width: int = 58) -> str:
    if peer is None:
        return f"{label:<{width}} {ours * 1000:>8.0f} ms"
    ratio = peer / ours
    word = "faster" if ratio >= 1 else "slower"
    return (f"{label:<{width}} {ours * 1000:>8.0f} ms {peer * 1000:>8.0f} ms "
            f"{max(ratio, 1 / ratio):>5.1f}x {word}")


def elf_files(d: str = "/usr/bin", limit: int | None = None, executable: bool = False) -> list[str]:
    """The ELF files directly in d (no links), sorted; at most `limit`; only executable ones
    when asked."""
    out = []
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if os.path.isfile(p) and not os.path.islink(p) and (not executable or os.access(p, os.X_OK)):
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(p)
        if limit is not None and len(out) == limit:
            break
    return out

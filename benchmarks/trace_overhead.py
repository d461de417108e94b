"""Overhead of tracing: `closure trace -- CMD` vs CMD alone vs a bare `strace -f` of it.

    python3 benchmarks/trace_overhead.py [-n RUNS] [-- CMD...]     (default: curl --version)

Prints the median and min wall time of each, and ratios against the bare command; then the
strace log parser's speed over the checked-in logs of tests/data/strace (lines/s).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def timed(fn, runs: int) -> list[float]:
    fn()                                   # warm caches
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("cmd", nargs="*", default=["curl", "--version"])
    a = ap.parse_args()
    cmd = a.cmd
    env = dict(os.environ, PYTHONPATH=REPO)
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    from closure.trace.run import find_strace, run_probe, strace_argv
    st = find_strace()

    def run(argv):
        return lambda: subprocess.run(argv, check=False, **quiet)

    cases = [
        ("command alone", run(cmd)),
        ("strace -f -o /dev/null", run(["strace", "-f", "-o", os.devnull, *cmd])),
        ("strace, closure's flags", run(strace_argv(st, os.devnull) + ["--", *cmd])),
        ("run_probe() in-process", lambda: run_probe(cmd)),
        ("closure trace --no-static", lambda: subprocess.run(
            [sys.executable, "-m", "closure.cli.app", "trace", "--no-static", "--", *cmd], env=env, **quiet)),
        ("closure trace", lambda: subprocess.run(
            [sys.executable, "-m", "closure.cli.app", "trace", "--", *cmd], env=env, **quiet)),
        ("python3 -c pass (startup)", run([sys.executable, "-c", "pass"])),
    ]
    base = None
    print(f"{' '.join(cmd)}: {a.n} runs each, wall seconds")
    print(f"{'':30} {'median':>9} {'min':>9} {'x alone':>8}")
    for name, fn in cases:
        ts = timed(fn, a.n)
        med = statistics.median(ts)
        base = base or med
        print(f"{name:30} {med:9.4f} {min(ts):9.4f} {med / base:8.1f}")
    parse_rate()


def parse_rate() -> None:
    """The parser over the test logs, repeated to 50k lines: median lines/s of 5 runs."""
    from closure.trace.parse import parse
    data = os.path.join(REPO, "tests", "data", "strace")
    lines: list[str] = []
    for name in sorted(os.listdir(data)):
        if name.endswith(".log"):
            with open(os.path.join(data, name), encoding="utf-8", errors="surrogateescape") as f:
                lines += f.readlines()
    big = lines * max(1, 50_000 // max(len(lines), 1))
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        parse(big, "/")
        rates.append(len(big) / (time.perf_counter() - t))
    print(f"{'strace log parser':30} {statistics.median(rates):9.0f} lines/s ({len(big)} lines)")


if __name__ == "__main__":
    main()

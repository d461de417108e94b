#!/usr/bin/env python3
"""Time `closure check` against `ldd -r` (the real loader, every symbol bound) on the same files.

Usage: python3 benchmarks/bench_check.py [--repeat N] [--jobs J]
Runs are interleaved (closure, ldd, closure, ldd, ...); medians of wall time and of CPU time
(user + system of the processes started: on a shared machine the fairer one) are printed,
with the ratios ldd/closure, for:
  1. the curl image: `closure check curl.tar` (built here by closure) vs `ldd -r` on every
     ELF object in it (the same files, on the host);
  2. every ELF file in /usr/bin: one `closure check FILE...` vs `ldd -r FILE` for each
     (J at a time; --jobs 1 is one after the other, as ldd works).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import elf_files  # noqa: E402




def ldd_all(files, jobs):
    def one(p):
        subprocess.run(["ldd", "-r", p], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, files))


def timed(fn):
    """(wall seconds, CPU seconds of the child processes fn ran)."""
    c = os.times()
    t = time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    d = os.times()
    return wall, (d.children_user - c.children_user) + (d.children_system - c.children_system)


def interleaved(a, b, repeat):
    """Medians of (wall, cpu) of a and of b, run in turn."""
    ta, tb = [], []
    for _ in range(repeat):
        ta.append(timed(a))
        tb.append(timed(b))
    med = lambda runs, k: statistics.median(r[k] for r in runs)   # noqa: E731
    return (med(ta, 0), med(ta, 1)), (med(tb, 0), med(tb, 1))


def row(case, ours, theirs):
    (wc, cc), (wl, cl) = ours, theirs
    print(f"{case:<34} {wc:>8.3f}s {wl:>8.3f}s {wl / wc:>6.1f}x   {cc:>7.2f}s {cl:>7.2f}s {cl / cc:>6.1f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=1, help="ldd -r processes at a time")
    args = ap.parse_args()
    exe = os.path.join(os.path.dirname(sys.executable), "closure")
    closure = [exe] if os.path.exists(exe) else [sys.executable, "-m", "closure.cli.app"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    print(f"{'':<34} {'wall (median)':^27}   {'CPU (median)':^24}")
    print(f"{'case':<34} {'closure':>9} {'ldd -r':>9} {'ratio':>7}   {'closure':>8} {'ldd -r':>8} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        image = os.path.join(tmp, "curl.tar")
        subprocess.run(closure + ["build", "/usr/bin/curl", "-o", image], check=True, **quiet)
        # The image's ELF objects, as host paths (closure build copies them from the host).
        from closure.check import dynamic_objects
        from closure.collect import Options, collect
        from closure.elf.ldso import Loader
        from closure.root import Root
        c = collect(["/usr/bin/curl"], Options(root=Root("/")))
        files = [e.source for e in c.sorted_entries() if e.type == "file" and e.source]
        progs, libs, _ = dynamic_objects(Loader(Root("/")), files)
        objs = progs + libs
        ours, theirs = interleaved(lambda: subprocess.run(closure + ["check", image], **quiet),
                                   lambda: ldd_all(objs, args.jobs), args.repeat)
        row(f"curl image ({len(objs)} objects)", ours, theirs)
    files = elf_files()
    n = max(1, args.repeat // 2)
    ours, theirs = interleaved(lambda: subprocess.run(closure + ["check"] + files, **quiet),
                               lambda: ldd_all(files, args.jobs), n)
    row(f"/usr/bin ({len(files)} ELF files)", ours, theirs)


if __name__ == "__main__":
    main()

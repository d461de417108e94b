#!/usr/bin/env python3
"""Time `closure check` against `ldd -r` (the real loader, every symbol bound) on the same files.

Usage: python3 benchmarks/bench_check.py [--repeat N] [--jobs J]
Runs are interleaved (closure, ldd, closure, ldd, ...); medians are printed, with the ratio
ldd/closure, for:
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


def elves(d="/usr/bin"):
    out = []
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if os.path.isfile(p) and not os.path.islink(p):
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(p)
    return out


def ldd_all(files, jobs):
    def one(p):
        subprocess.run(["ldd", "-r", p], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, files))


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(a, b, repeat):
    ta, tb = [], []
    for _ in range(repeat):
        ta.append(timed(a))
        tb.append(timed(b))
    return statistics.median(ta), statistics.median(tb)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=1, help="ldd -r processes at a time")
    args = ap.parse_args()
    exe = os.path.join(os.path.dirname(sys.executable), "closure")
    closure = [exe] if os.path.exists(exe) else [sys.executable, "-m", "closure.cli.app"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    print(f"{'case':<34} {'closure':>9} {'ldd -r':>9} {'ratio':>7}")
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
        tc, tl = interleaved(lambda: subprocess.run(closure + ["check", image], **quiet),
                             lambda: ldd_all(objs, args.jobs), args.repeat)
        print(f"{f'curl image ({len(objs)} objects)':<34} {tc:>8.3f}s {tl:>8.3f}s {tl / tc:>6.1f}x")
    files = elves()
    n = max(1, args.repeat // 2)
    tc, tl = interleaved(lambda: subprocess.run(closure + ["check"] + files, **quiet),
                         lambda: ldd_all(files, args.jobs), n)
    print(f"{f'/usr/bin ({len(files)} ELF files)':<34} {tc:>8.3f}s {tl:>8.3f}s {tl / tc:>6.1f}x")


if __name__ == "__main__":
    main()

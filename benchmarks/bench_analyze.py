#!/usr/bin/env python3
"""Time `closure analyze` against pax-utils' `lddtree` (Python, pyelftools) in the same run.

Usage: python3 benchmarks/bench_analyze.py [--repeat N]
Prints wall times (best of N) and the ratio lddtree/closure for:
  1. /usr/bin/curl alone (closure analyze --json vs lddtree)
  2. every ELF file in /usr/bin, given to each tool in one invocation
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time


def elves(d="/usr/bin"):
    out = []
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if os.path.isfile(p) and not os.path.islink(p):
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(p)
    return out


def best(cmd, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    closure = [sys.executable, "-m", "closure.cli.app", "analyze", "--no-recipes"]
    exe = os.path.join(os.path.dirname(sys.executable), "closure")
    if os.path.exists(exe):
        closure = [exe, "analyze", "--no-recipes"]
    lddtree = shutil.which("lddtree")
    if lddtree is None:
        sys.exit("lddtree not found: apt-get install pax-utils")
    lddtree_cmd = [sys.executable, lddtree]  # with this Python, which has pyelftools
    print(f"{'case':<28} {'closure':>9} {'lddtree':>9} {'ratio':>7}")
    c = best(closure + ["/usr/bin/curl", "--json"], args.repeat)
    l = best(lddtree_cmd + ["/usr/bin/curl"], args.repeat)
    print(f"{'curl':<28} {c:>8.3f}s {l:>8.3f}s {l / c:>6.1f}x")
    files = elves()
    n = max(1, args.repeat // 3)
    c = best(closure + ["--json"] + files, n)
    l = best(lddtree_cmd + files, n)
    print(f"{f'/usr/bin ({len(files)} ELF files)':<28} {c:>8.3f}s {l:>8.3f}s {l / c:>6.1f}x")


if __name__ == "__main__":
    main()

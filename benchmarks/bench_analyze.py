#!/usr/bin/env python3
"""Time `closure analyze` against pax-utils' `lddtree` (Python, pyelftools) in the same run.

Usage: python3 benchmarks/bench_analyze.py [--rounds N]
Prints medians of interleaved rounds and the ratio for:
  1. /usr/bin/curl alone: `closure analyze --json` (default settings: recipes on) and with
     --no-recipes (the ELF closure only, what lddtree computes) vs lddtree
  2. every ELF file in /usr/bin, given to each tool in one invocation
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import elf_files, interleaved, row, run  # noqa: E402




def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=11)
    args = ap.parse_args()
    exe = os.path.join(os.path.dirname(sys.executable), "closure")
    closure = [exe, "analyze"] if os.path.exists(exe) else [sys.executable, "-m", "closure.cli.app", "analyze"]
    lddtree = shutil.which("lddtree")
    if lddtree is None:
        sys.exit("lddtree not found: apt-get install pax-utils")
    lddtree_cmd = [sys.executable, lddtree]  # with this Python, which has pyelftools
    files = elf_files()
    t = interleaved({
        "curl": lambda: run(closure + ["/usr/bin/curl", "--json"]),
        "curl-elf": lambda: run(closure + ["/usr/bin/curl", "--json", "--no-recipes"]),
        "lddtree-curl": lambda: run(lddtree_cmd + ["/usr/bin/curl"]),
    }, args.rounds)
    print(f"{'medians of %d interleaved rounds' % args.rounds:<58} {'closure':>11} {'lddtree':>11}")
    print(row("analyze curl --json (recipes on) vs lddtree curl", t["curl"], t["lddtree-curl"]))
    print(row("analyze curl --json --no-recipes vs lddtree curl", t["curl-elf"], t["lddtree-curl"]))
    t = interleaved({
        "all": lambda: run(closure + ["--json", "--no-recipes"] + files),
        "lddtree-all": lambda: run(lddtree_cmd + files),
    }, max(1, args.rounds // 3))
    print(row(f"/usr/bin, {len(files)} ELF files in one call", t["all"], t["lddtree-all"]))


if __name__ == "__main__":
    main()

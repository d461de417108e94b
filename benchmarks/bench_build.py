#!/usr/bin/env python3
"""Time `closure build` against `lddtree --copy-to-tree` + `tar` in the same run, and the
layer writer's speed on a large closure.

Usage: python3 benchmarks/bench_build.py [--repeat N] [--large DIR]
Prints wall times (best of N) and ratios for:
  1. /usr/bin/curl: `closure build -o DIR` (static analysis + recipes, OCI layout with a
     gzip layer) vs `lddtree --copy-to-tree T` then `tar -cf` of T (the ELF closure alone,
     which is all lddtree knows: that image fails HTTPS), uncompressed and gzipped; and
     the build without the dpkg records for scanners (--no-package-records)
  2. the layer writer (read, tar, hash, compress, write) over every regular file under
     --large (default /usr/lib/x86_64-linux-gnu), in MB/s of input, for zstd and gzip
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def large_closure(top: str):
    """Every regular file under top (links and special files left out), as one Closure."""
    from closure.model import Closure, Entry, Reason
    c = Closure(targets=[])
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p) and os.access(p, os.R_OK):
                c.add(Entry(p, "file", mode=0o644, size=os.path.getsize(p), source=p), Reason("include"))
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--large", default="/usr/lib/x86_64-linux-gnu")
    args = ap.parse_args()
    exe = os.path.join(os.path.dirname(sys.executable), "closure")
    closure = [exe] if os.path.exists(exe) else [sys.executable, "-m", "closure.cli.app"]
    lddtree = shutil.which("lddtree")
    if lddtree is None:
        sys.exit("lddtree not found: apt-get install pax-utils")

    with tempfile.TemporaryDirectory(prefix="closure-bench-") as tmp:
        out = os.path.join(tmp, "img")

        def ours(*flags):
            return lambda: run(closure + ["build", "/usr/bin/curl", "-o", out, "--force", *flags])

        def theirs(*tar_flags):
            def go():
                tree = os.path.join(tmp, "tree")
                shutil.rmtree(tree, ignore_errors=True)
                run([sys.executable, lddtree, "--copy-to-tree", tree, "/usr/bin/curl"])
                run(["tar", "-cf", os.path.join(tmp, "tree.tar"), *tar_flags, "-C", tree, "."])
            return go

        ours()(), theirs()()                   # warm the page cache
        print(f"{'case (peer: lddtree --copy-to-tree + tar)':<52} {'closure':>9} {'peer':>9} {'ratio':>7}")
        for label, mine, peer in (
                ("curl: build vs tar", ours(), theirs()),
                ("curl: build vs tar --gzip (a layer is compressed)", ours(), theirs("--gzip")),
                ("curl: build --no-package-records vs tar", ours("--no-package-records"), theirs())):
            c, l = best(mine, args.repeat), best(peer, args.repeat)
            print(f"{label:<52} {c:>8.3f}s {l:>8.3f}s {l / c:>6.1f}x")

        from closure.image import ImageOptions, write_image
        from closure.root import Root
        big = large_closure(args.large)
        mb = big.total_bytes / 1e6
        for kind in ("zstd", "gzip"):
            dest = os.path.join(tmp, f"large-{kind}")

            def write(kind=kind, dest=dest):
                write_image(big, Root("/"), dest, ImageOptions(compression=kind, force=True))

            write()
            t = best(write, max(1, args.repeat // 2))
            print(f"{f'layer writer, {kind}, {mb:.0f} MB ({args.large})':<52} {t:>8.3f}s {'':>9} "
                  f"{mb / t:>5.0f} MB/s")


if __name__ == "__main__":
    main()

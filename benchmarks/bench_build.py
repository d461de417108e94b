#!/usr/bin/env python3
"""Time `closure build` against `lddtree --copy-to-tree` + `tar`, and against the physical
floor of the job, in one interleaved run (medians); the layer writer's speed; the memory
of a 100-program build.

Usage: python3 benchmarks/bench_build.py [--rounds N] [--large DIR]
  1. /usr/bin/curl, default settings (recipes, package records, gzip): `closure build -o
     x.tar` vs lddtree --copy-to-tree T + `tar -cf` (a bare tree: the ELF closure alone,
     which fails HTTPS), with `tar --gzip`, and lddtree alone
  2. the floor: interpreter start + reading the image's files + ISA-L deflate + sha256 of
     the tar and of the compressed bytes: what any builder in Python must pay
  3. 100 ELF programs of /usr/bin in one image: time and peak RSS
  4. the layer writer over every file under --large, in MB/s, gzip and zstd
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import elf_files, interleaved, peak_rss_mb, row, run  # noqa: E402


def closure_cmd() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "closure")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "closure.cli.app"]


def floor_case(files: list[str]):
    """The work no builder can skip, in this interpreter: read, deflate, hash."""
    from isal import isal_zlib

    def go():
        run([sys.executable, "-S", "-c", "pass"])       # interpreter start
        tar_hash, gz_hash = hashlib.sha256(), hashlib.sha256()
        comp = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
        for p in files:
            with open(p, "rb") as f:
                while block := f.read(1 << 20):
                    tar_hash.update(block)
                    gz_hash.update(comp.compress(block))
        gz_hash.update(comp.flush())
    return go


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
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--large", default="/usr/lib/x86_64-linux-gnu")
    args = ap.parse_args()
    closure = closure_cmd()
    lddtree = shutil.which("lddtree")
    if lddtree is None:
        sys.exit("lddtree not found: apt-get install pax-utils")

    with tempfile.TemporaryDirectory(prefix="closure-bench-") as tmp:
        out = os.path.join(tmp, "x.tar")
        tree = os.path.join(tmp, "tree")
        doc = json.loads(subprocess.run(closure + ["analyze", "/usr/bin/curl", "--json"],
                                        capture_output=True, text=True, check=True).stdout)
        files = [os.path.realpath(e.get("source") or e["path"]) for e in doc["entries"]
                 if e["type"] == "file" and os.path.isfile(os.path.realpath(e.get("source") or e["path"]))]

        def lddtree_tar(*tar_flags):
            def go():
                shutil.rmtree(tree, ignore_errors=True)
                run([sys.executable, lddtree, "--copy-to-tree", tree, "/usr/bin/curl"])
                if tar_flags != ("none",):
                    run(["tar", "-cf", os.path.join(tmp, "tree.tar"), *tar_flags, "-C", tree, "."])
            return go

        cases = {
            "closure": lambda: run(closure + ["build", "/usr/bin/curl", "-o", out, "--force"]),
            "lddtree+tar": lddtree_tar(),
            "lddtree+tar-gz": lddtree_tar("--gzip"),
            "lddtree": lddtree_tar("none"),
            "floor": floor_case(files),
        }
        t = interleaved(cases, args.rounds)
        print(f"{'curl (medians of %d interleaved rounds)' % args.rounds:<58} {'closure':>11} {'peer':>11}")
        print(row("build x.tar (default) vs lddtree --copy-to-tree + tar", t["closure"], t["lddtree+tar"]))
        print(row("build x.tar (default) vs lddtree + tar --gzip", t["closure"], t["lddtree+tar-gz"]))
        print(row("build x.tar (default) vs lddtree --copy-to-tree alone", t["closure"], t["lddtree"]))
        mb = sum(os.path.getsize(p) for p in files) / 1e6
        print(row(f"physical floor ({len(files)} files, {mb:.1f} MB): start+read+deflate+sha256", t["floor"]))
        print(f"{'closure build / floor':<58} {t['closure'] / t['floor']:>8.1f}x")

        progs = elf_files(limit=100, executable=True)
        many = closure + ["build", *progs, "-o", os.path.join(tmp, "many.tar"), "--force"]
        t0 = time.perf_counter()
        rss = peak_rss_mb(many)
        print(row(f"{len(progs)} programs of /usr/bin in one image (peak RSS {rss:.0f} MB)",
                  time.perf_counter() - t0))

        from closure.image import ImageOptions, write_image
        from closure.root import Root
        big = large_closure(args.large)
        mb = big.total_bytes / 1e6
        for kind in ("gzip", "zstd"):
            dest = os.path.join(tmp, f"large-{kind}")
            w = {kind: lambda kind=kind, dest=dest: write_image(big, Root("/"), dest,
                                                                ImageOptions(compression=kind, force=True))}
            secs = interleaved(w, 3)[kind]
            print(f"{f'layer writer, {kind}, {mb:.0f} MB ({args.large})':<58} {secs * 1000:>8.0f} ms "
                  f"{mb / secs:>6.0f} MB/s")


if __name__ == "__main__":
    main()

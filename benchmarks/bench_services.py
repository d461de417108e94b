#!/usr/bin/env python3
"""Services built with `--serve` against the Debian rootfs a Dockerfile would start from.

For nginx, redis and PostgreSQL: the wall time of `closure build ... --serve` (the same
commands as tests/integration/test_serve.py), the image's bytes (files, and the gzip
layer), against `debootstrap --variant=minbase` bookworm alone and with the package
installed (apt caches and lists removed, as an image would have them). The debootstrapped
roots are cached under ~/.cache/closure-bench (the first run downloads ~100 MB a root).

Usage: python3 benchmarks/bench_services.py [--mirror URL] [--skip-debian]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOSURE = [os.path.join(os.path.dirname(sys.executable), "closure")]
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "closure-bench")
PG = "/usr/lib/postgresql/15/bin"
PG_ENTRY = f"""#!/bin/sh
set -e
{PG}/initdb -D /tmp/pgdata -U postgres --auth=trust >/dev/null
exec {PG}/postgres -D /tmp/pgdata -k /tmp -h 127.0.0.1 -p "${{PGPORT:-5432}}"
"""


def services(scratch: str) -> list[tuple[str, str, list[str]]]:
    """(name, Debian package, closure build arguments)."""
    entry = os.path.join(scratch, "entry.sh")
    with open(entry, "w") as f:
        f.write(PG_ENTRY)
    os.chmod(entry, 0o755)
    return [
        ("nginx", "nginx", ["/usr/sbin/nginx", "--cmd", "-g 'daemon off;'", "--serve", "--ready", "tcp:80",
                            "--http", "GET / 200"]),
        ("redis", "redis-server", ["/usr/bin/redis-server", "--cmd", "--protected-mode no --save ''",
                                   "--serve", "--ready", "tcp:6379", "--client", "redis-cli ping"]),
        ("postgres", "postgresql", [entry, "--user", "postgres", "--serve", "--ready", "tcp:5432",
                                    "--client", "psql -h 127.0.0.1 -U postgres -tAc 'select 1'"]),
    ]


def tree_bytes(root: str) -> int:
    """Bytes of regular files (hard links once), as an image's layer would hold them."""
    total, seen = 0, set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames:
            st = os.lstat(os.path.join(dirpath, n))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def debian_bytes(package: str | None, mirror: str) -> int | None:
    """Bytes of a minbase bookworm root with package (None: minbase alone), cached."""
    name = package or "minbase"
    done = os.path.join(CACHE, f"{name}.bytes")
    if os.path.exists(done):
        with open(done) as f:
            return int(f.read())
    root = os.path.join(CACHE, f"{name}.root")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(CACHE, exist_ok=True)
    cmd = ["debootstrap", "--variant=minbase"] + ([f"--include={package}"] if package else []) + \
        ["bookworm", root, mirror]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"  debootstrap {name} failed: {r.stderr.strip()[-200:]}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
        return None
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for dirpath, _d, filenames in os.walk(os.path.join(root, sub)):
            for n in filenames:
                if n != "lock":
                    os.unlink(os.path.join(dirpath, n))
    size = tree_bytes(root)
    shutil.rmtree(root, ignore_errors=True)
    with open(done, "w") as f:
        f.write(str(size))
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", default="http://deb.debian.org/debian")
    ap.add_argument("--skip-debian", action="store_true", help="only closure's side")
    args = ap.parse_args()
    sys.path.insert(0, REPO)
    try:
        from tests.slim_images import debian_mirror
        mirror = args.mirror if args.mirror != ap.get_default("mirror") else debian_mirror()
    except ImportError:
        mirror = args.mirror
    minbase = None if args.skip_debian else debian_bytes(None, mirror)
    print(f"{'service':10} {'build s':>8} {'files MB':>9} {'layer MB':>9} {'debian+pkg MB':>14} {'ratio':>6}")
    with tempfile.TemporaryDirectory(prefix="closure-bench-") as scratch:
        os.chmod(scratch, 0o755)          # postgres (the account) runs the entrypoint from here
        for name, package, build in services(scratch):
            out = os.path.join(scratch, f"{name}.tar")
            t0 = time.monotonic()
            r = subprocess.run(CLOSURE + ["build", *build, "-o", out, "--json"], capture_output=True, text=True)
            took = time.monotonic() - t0
            if r.returncode != 0:
                print(f"{name:10} failed: {r.stderr.strip().splitlines()[-1:]}")
                continue
            doc = json.loads(r.stdout)
            deb = None if args.skip_debian else debian_bytes(package, mirror)
            ratio = f"{deb / doc['content_bytes']:.1f}x" if deb else "-"
            print(f"{name:10} {took:8.1f} {doc['content_bytes'] / 1e6:9.1f} {doc['layer_size'] / 1e6:9.1f} "
                  f"{(deb / 1e6 if deb else float('nan')):14.1f} {ratio:>6}")
    if minbase:
        print(f"(debian bookworm minbase alone: {minbase / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()

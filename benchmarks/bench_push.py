#!/usr/bin/env python3
"""Push to a real registry (Debian's docker-registry on 127.0.0.1, a fresh one for every
timed push so nothing is already there): `closure push` against `skopeo copy` of the same
OCI layout, interleaved rounds (medians); the bytes a family of images uploads with layers
by package vs single-layer images; closure push's peak memory on a big layer.

Usage: python3 benchmarks/bench_push.py [--rounds N] [--big-mb MB]
  1. the curl image (one layer): closure push vs skopeo copy oci:DIR docker://...
  2. a family of 10 corpus programs: built single-layer (one image each) and with --each
     (layers by package origin): bytes uploaded for the 2nd..10th image, against the sum of
     their sizes; then the whole family pushed by closure (mounting what is there) vs skopeo
  3. peak RSS of `closure push` of an image with a --big-mb MB layer (uncompressed random)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import interleaved, peak_rss_mb, row, run  # noqa: E402

FAMILY = ["curl", "openssl", "git", "ssh", "python3", "perl", "sqlite3", "jq", "busybox", "redis-server"]


def closure_cmd() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "closure")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "closure.cli.app"]


@contextlib.contextmanager
def fresh_registry(base: Path):
    from tests.registry import registry
    d = Path(tempfile.mkdtemp(dir=base))
    try:
        with registry(d) as r:
            yield r
    finally:
        shutil.rmtree(d, ignore_errors=True)


def timed_push(base: Path, push) -> callable:
    """A case: start a registry (not timed), push into it (timed by the caller), stop."""
    def case():
        with fresh_registry(base) as r:
            push(r.host)
    return case


def build(args: list[str]) -> dict:
    p = subprocess.run(closure_cmd() + ["build", *args, "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(p.stderr)
    return json.loads(p.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--big-mb", type=int, default=1024)
    a = ap.parse_args()
    if not shutil.which("skopeo"):
        raise SystemExit("needs skopeo")
    # An installed closure has its bytecode compiled; a PYTHONDONTWRITEBYTECODE shell would
    # make every timed run compile ~200 modules again (+0.5 s here) and time that instead.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    work = Path(tempfile.mkdtemp(prefix="bench-push-"))
    try:
        bench(work, a)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench(work: Path, a) -> None:
    from closure.registry.push import push
    from closure.registry.reference import parse
    from closure.registry.transport import RegistryOptions

    # Each timed push runs in its own process, as a user runs it; the registry start is
    # inside the case but the same for both tools.
    curl = work / "curl.oci"
    build(["/usr/bin/curl", "-o", str(curl)])
    print("1. push of the curl image (one layer) into an empty registry, median of "
          f"{a.rounds} rounds (each includes starting the registry, ~equal for both)")
    t = interleaved({
        "closure": timed_push(work, lambda h: run(closure_cmd() + ["push", str(curl), f"docker://{h}/t/curl:1",
                                                                  "--tls-verify=false"])),
        "skopeo": timed_push(work, lambda h: run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                                                  f"oci:{curl}:latest", f"docker://{h}/t/curl:1"])),
    }, a.rounds)
    print(f"{'':<58} {'closure':>11} {'skopeo':>11}")
    print(row("   closure push vs skopeo copy", t["closure"], t["skopeo"]))

    programs = [p for p in (shutil.which(n) for n in FAMILY) if p]
    print(f"\n2. a family of {len(programs)} programs: {' '.join(os.path.basename(p) for p in programs)}")
    single = work / "single"
    single.mkdir()
    for p in programs:
        build([p, "-o", str(single / f"{os.path.basename(p)}.oci")])
    (work / "fam").mkdir()
    fam = build([*programs, "--each", "-o", str(work / "fam" / "{name}.oci")])["images"]
    layered = [Path(i["path"]) for i in fam]
    opts = RegistryOptions(tls_verify=False)

    def push_all(layouts, host) -> list:
        known: dict[str, str] = {}
        out = []
        for layout in layouts:
            ref = parse(f"{host}/tools/{layout.stem}:1")
            out.append(push(str(layout), None, ref, opts.client(ref), mount_from=known))
        return out

    rows = {}
    for label, layouts in (("single-layer", sorted(single.iterdir(), key=lambda p: FAMILY.index(p.stem) if p.stem in FAMILY else 99)),
                           ("layers by package (--each)", layered)):
        with fresh_registry(work) as r:
            results = push_all(layouts, r.host)
        sizes = [sum(os.path.getsize(layout / "blobs" / "sha256" / d["digest"].split(":")[1])
                     for d in json.loads((layout / "blobs" / "sha256" / r_.digest.split(":")[1]).read_text())["layers"])
                 for layout, r_ in zip(layouts, results)]
        sent = [r_.stats.bytes_uploaded for r_ in results]
        rows[label] = (sum(sent[1:]), sum(sizes[1:]), sum(sent), max(
            len(json.loads((layout / "blobs" / "sha256" / r_.digest.split(":")[1]).read_text())["layers"])
            for layout, r_ in zip(layouts, results)))
    print(f"   {'':<30} {'2nd..10th sent':>15} {'their sizes':>12} {'all sent':>10} {'max layers':>10}")
    for label, (rest, rest_size, whole, most) in rows.items():
        print(f"   {label:<30} {rest / 1e6:>12.1f} MB {rest_size / 1e6:>9.1f} MB {whole / 1e6:>7.1f} MB {most:>10}")
    s, l_ = rows["single-layer"], rows["layers by package (--each)"]
    print(f"   the 2nd..10th images upload {s[0] / max(l_[0], 1):.1f}x fewer bytes with layers by package "
          f"({100 * (1 - l_[0] / max(l_[1], 1)):.0f}% of their size is already in the registry)")

    # closure pushes the family from one process (as `build --each` does, with mounts);
    # timed as a fresh interpreter so its start-up counts as skopeo's does.
    family_push = f"""
import sys; sys.path.insert(0, {REPO!r})
from closure.registry.push import push
from closure.registry.reference import parse
from closure.registry.transport import RegistryOptions
known = {{}}
for layout in sys.argv[2:]:
    ref = parse(f"{{sys.argv[1]}}/tools/{{layout.rsplit('/', 1)[-1][:-4]}}:1")
    push(layout, None, ref, RegistryOptions(tls_verify=False).client(ref), mount_from=known)
"""
    t = interleaved({
        "closure": timed_push(work, lambda h: run([sys.executable, "-c", family_push, h, *map(str, layered)])),
        "skopeo": timed_push(work, lambda h: [run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                                                   f"oci:{p}:latest", f"docker://{h}/tools/{p.stem}:1"])
                                              for p in layered]),
    }, max(1, a.rounds // 2))
    print(row("   the layered family: closure (one process) vs 10 skopeo copies", t["closure"], t["skopeo"]))
    print("   (closure's own start, ~0.3 s of Python and typer here, weighs on a single small push)")

    print(f"\n3. memory: closure push of a {a.big_mb} MB layer")
    big = work / "big.bin"
    with open(big, "wb") as f:
        for _ in range(a.big_mb):
            f.write(os.urandom(1 << 20))
    layout = work / "big.oci"
    build(["/usr/bin/true", "--include", f"{big}:/big.bin", "--compression", "none", "-o", str(layout)])
    big.unlink()
    small_rss = big_rss = 0.0
    with fresh_registry(work) as r:
        small_rss = peak_rss_mb(closure_cmd() + ["push", str(curl), f"docker://{r.host}/t/small:1", "--tls-verify=false"])
        big_rss = peak_rss_mb(closure_cmd() + ["push", str(layout), f"docker://{r.host}/t/big:1", "--tls-verify=false"])
    print(f"   peak RSS: {small_rss:.0f} MB for the 10 MB curl image, {big_rss:.0f} MB for the {a.big_mb} MB layer")


if __name__ == "__main__":
    main()

"""The loader emulation against the real loader: for every ELF object on the machine that
`ldd` can trace (/usr/bin, /usr/sbin, /usr/libexec, all of /usr/lib, /opt, /usr/local,
directories reached through symlinks included, each real file once), the real files `ldd`
maps (interpreter included, vdso excluded) and the names it cannot find must equal what
closure resolves. The counts are printed in the test output."""
from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from closure.elf.ldso import Loader
from closure.errors import NotElf
from closure.root import Root
from tests.elf_fixtures import parse_loader_list
from tests.measured import MEASURED

pytestmark = pytest.mark.slow


def elf_files(dirs, libs_only=False):
    seen = set()
    for d in dirs:
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if libs_only and ".so" not in name:
                continue
            real = os.path.realpath(os.path.join(d, name))
            if real in seen or not os.path.isfile(real):
                continue
            seen.add(real)
            with open(real, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    yield real


def ldd(path):
    """(set of real paths mapped, set of names not found) or None if ldd has no answer."""
    p = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=60)
    if p.returncode != 0 or "statically linked" in p.stdout or "not a dynamic" in p.stdout:
        return None
    return parse_loader_list(p.stdout, os.path.realpath, path)


def ours(loader, path):
    try:
        result = loader.load(path)
    except NotElf:
        return None
    if result.main.info.interp is None and not result.main.info.needed:
        return None
    mapped = {o.real for o in result.objects if o is not result.main}
    missing = {e.name for e in result.edges if e.path is None}
    return mapped, missing


def compare(paths):
    loader = Loader(Root("/"))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        real = dict(zip(paths, pool.map(ldd, paths)))
    diffs = []
    for path in paths:
        want, got = real[path], ours(loader, path)
        if want is None:
            continue
        if got != want:
            diffs.append((path, want, got))
    return diffs, sum(1 for v in real.values() if v is not None)


def elf_tree(tops):
    """Every ELF file under tops, symlinked directories followed (each real dir and real
    file once, so a link loop ends), in a stable order."""
    seen_dirs, seen, out = set(), set(), []
    stack = [t for t in reversed(tops) if os.path.isdir(t)]
    while stack:
        d = stack.pop()
        real_d = os.path.realpath(d)
        if real_d in seen_dirs:
            continue
        seen_dirs.add(real_d)
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in reversed(names):
            p = os.path.join(d, name)
            if os.path.isdir(p):
                stack.append(p)
                continue
            real = os.path.realpath(p)
            if real in seen or not os.path.isfile(real):
                continue
            seen.add(real)
            try:
                with open(real, "rb") as f:
                    if f.read(4) == b"\x7fELF":
                        out.append(real)
            except OSError:
                pass
    return sorted(out)


def report(what, compared, diffs):
    MEASURED.append(f"ldd parity, {what}: {compared} objects compared, {len(diffs)} differences")


@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs glibc's ldd")
def test_every_object_beyond_usr_bin_matches_ldd():
    """Plugins, private library dirs (/usr/lib/x86_64-linux-gnu/systemd), libexec helpers,
    vendor trees under /opt: everything ldd answers for, except what the other tests cover."""
    covered = set(elf_files(["/usr/bin", "/usr/sbin"]))
    covered |= set(elf_files(["/usr/lib/x86_64-linux-gnu"], libs_only=True))
    paths = [p for p in elf_tree(["/usr/libexec", "/usr/lib", "/opt", "/usr/local", "/usr/lib64"])
             if p not in covered and "/usr/lib/debug/" not in p]
    diffs, compared = compare(paths)
    report("/usr/lib/** + /usr/libexec + /opt + /usr/local", compared, diffs)
    assert compared > 50
    assert diffs == [], "\n".join(f"{p}: ldd={w} closure={g}" for p, w, g in diffs[:10])


@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs glibc's ldd")
def test_programs_match_ldd():
    paths = list(elf_files(["/usr/bin", "/usr/sbin"]))
    diffs, compared = compare(paths)
    report("/usr/bin + /usr/sbin", compared, diffs)
    assert compared > 100
    assert diffs == [], "\n".join(f"{p}: ldd={w} closure={g}" for p, w, g in diffs[:10])


@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs glibc's ldd")
def test_libraries_match_ldd():
    paths = list(elf_files(["/usr/lib/x86_64-linux-gnu"], libs_only=True))
    diffs, compared = compare(paths)
    report("/usr/lib/x86_64-linux-gnu/*.so*", compared, diffs)
    assert compared > 100
    assert diffs == [], "\n".join(f"{p}: ldd={w} closure={g}" for p, w, g in diffs[:10])

"""`closure check` against `ldd -r` (the real loader resolving every symbol, LD_BIND_NOW) over
the ELF objects of this machine: the same missing libraries, missing versions and
undefined symbols, object by object; 0 false reports. A deterministic sample of every
ELF object ldd can trace runs by default (ldd -r costs ~20 ms an object);
CLOSURE_CHECK_PARITY=all compares every one. Counts go to the test summary."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from closure.check import Checker
from closure.errors import NotElf
from closure.root import Root
from tests.integration.test_ldd_parity import elf_tree
from tests.measured import MEASURED

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("ldd") is None, reason="needs glibc's ldd")]
SAMPLE = 250
UNDEFINED = re.compile(r"^\s*undefined symbol: (\S+?)(?:, version (\S+))?\t\((.*)\)$")
VERSION = re.compile(r"^\s*(?:\S+: )?(\S+): version `(\S+)' not found \(required by (\S+)\)$")
NOT_FOUND = re.compile(r"^\s*(\S+) => not found$")


def ldd_r(path):
    """What `ldd -r` reports for path, as (kind, requirer, name, version) tuples; None when
    ldd cannot trace it (static, foreign class, not loadable)."""
    p = subprocess.run(["ldd", "-r", path], capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    if "not a dynamic executable" in out or "statically linked" in out or not p.stdout:
        return None
    found = set()
    for line in out.splitlines():
        if m := UNDEFINED.match(line):
            found.add(("symbol", os.path.realpath(m[3]), m[1], m[2]))
        elif m := VERSION.match(line):
            found.add(("version", os.path.realpath(m[3]), m[2], None))
        elif m := NOT_FOUND.match(line):
            found.add(("library", None, m[1], None))
    return found


def ours(checker, path):
    try:
        problems, _objects = checker.check(path)
    except NotElf:
        return None
    out = set()
    for p in problems:
        if p.kind == "library":
            out.add(("library", None, p.name, None))
        else:
            out.add((p.kind, p.object, p.name, p.version))
    return out


def objects():
    paths = elf_tree(["/usr/bin", "/usr/sbin", "/usr/libexec", "/usr/lib", "/opt", "/usr/local", "/usr/lib64"])
    paths = [p for p in paths if "/usr/lib/debug/" not in p]
    if os.environ.get("CLOSURE_CHECK_PARITY") == "all":
        return paths, "all"
    key = lambda p: hashlib.sha256(p.encode()).digest()   # noqa: E731 - a stable sample
    return sorted(sorted(paths, key=key)[:SAMPLE]), f"a sample of {SAMPLE} of {len(paths)}"


def test_check_reports_what_ldd_r_reports():
    paths, which = objects()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        real = dict(zip(paths, pool.map(ldd_r, paths)))
    checker = Checker(Root("/"))
    compared = reports = 0
    diffs = []
    for path in paths:
        want = real[path]
        if want is None:
            continue
        got = ours(checker, path)
        compared += 1
        reports += len(want)
        if got != want:
            diffs.append(f"{path}: only ldd -r: {sorted(want - (got or set()))[:5]}; "
                         f"only closure: {sorted((got or set()) - want)[:5]}")
    MEASURED.append(f"closure check vs ldd -r ({which}): {compared} objects, {reports} problems "
                    f"ldd -r reports, {len(diffs)} differences")
    assert compared > 100
    assert diffs == [], "\n".join(diffs[:20])

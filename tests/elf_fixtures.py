"""Tiny C programs and libraries compiled with gcc at test time, with controlled
DT_NEEDED, RPATH/RUNPATH, $ORIGIN and dlopen strings."""
from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def cc(out: Path, source: str, *args: str, shared: bool = False) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.parent / (out.name.replace(".", "_") + ".c")
    src.write_text(source)
    cmd = ["gcc", "-o", str(out), str(src), "-Wl,--no-as-needed"]
    if shared:
        cmd[1:1] = ["-shared", "-fPIC"]
    subprocess.run(cmd + list(args), check=True, capture_output=True)
    return out


def lib(out: Path, func: str, *args: str, soname: str | None = None) -> Path:
    soname = soname or out.name
    return cc(out, f"int {func}(void) {{ return 1; }}\n", f"-Wl,-soname,{soname}", *args, shared=True)


def rpath(dirs: str, new_dtags: bool) -> list[str]:
    """-Wl flags for DT_RUNPATH (new dtags) or DT_RPATH (old)."""
    return [f"-Wl,-rpath,{dirs}", "-Wl,--enable-new-dtags" if new_dtags else "-Wl,--disable-new-dtags"]


def set_machine(path: Path, machine: int) -> None:
    """Rewrite e_machine: a foreign-architecture decoy the loader must skip."""
    data = bytearray(path.read_bytes())
    data[18:20] = machine.to_bytes(2, "little")
    path.write_bytes(bytes(data))


def ldd_paths(path: Path, env: dict | None = None) -> dict[str, str]:
    """name -> resolved real path (or 'not found') as the real loader sees it."""
    p = subprocess.run(["ldd", str(path)], capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    out = {}
    for line in p.stdout.splitlines():
        if "=>" in line:
            name, where = (x.strip() for x in line.split("=>", 1))
            where = where.split(" (")[0]
            out[name] = where if where == "not found" else os.path.realpath(where)
    return out


def ldso_searched_subdirs() -> tuple[list[str], list[str]]:
    """(glibc-hwcaps levels, legacy hwcap subdirectories) that the host's ld.so marks
    "searched" in `ld.so --help`, best first: what this CPU makes the loader try."""
    p = subprocess.run(["/lib64/ld-linux-x86-64.so.2", "--help"], capture_output=True, text=True)
    hwcaps: list[str] = []
    legacy: list[str] = []
    section = None
    for line in p.stdout.splitlines():
        if line.startswith("Subdirectories of glibc-hwcaps"):
            section = hwcaps
        elif line.startswith("Legacy HWCAP subdirectories"):
            section = legacy
        elif not line.startswith("  "):
            section = None
        elif section is not None and "searched" in line:
            name = line.split()[0]
            if name not in section:
                section.append(name)
    return hwcaps, legacy


HOST_SAMPLE_DIRS = ("/usr/bin", "/usr/lib/x86_64-linux-gnu")
# One line of `ldd` / `ld.so --list`: "name => path (0x...)", "path (0x...)", "name => not found".
LOADER_LIST_LINE = re.compile(r"^\s*(?:(\S+) => )?(\S+|not found)(?: \(0x[0-9a-f]+\))?$")


def host_elf_sample(limit: int, seed: int, dirs=HOST_SAMPLE_DIRS) -> list[str]:
    """A fixed-seed sample of the ELF files (no links) directly in dirs of this host."""
    files = []
    for d in dirs:
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    if f.read(4) == b"\x7fELF":
                        files.append(p)
    random.Random(seed).shuffle(files)
    return files[:limit]


def parse_loader_list(stdout: str, resolve, what: str) -> tuple[set[str], set[str]]:
    """(paths mapped, each through resolve(), names not found) from ldd or `ld.so --list`
    output; linux-vdso has no file and is left out."""
    mapped, missing = set(), set()
    for line in stdout.splitlines():
        m = LOADER_LIST_LINE.match(line)
        assert m, f"unparsed loader line for {what}: {line!r}"
        name, where = m.groups()
        if where == "not found":
            missing.add(name)
        elif where.startswith("/"):
            mapped.add(resolve(where))
    return mapped, missing

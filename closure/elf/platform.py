"""What the loader substitutes and searches that depends on the machine: $LIB, $PLATFORM,
glibc-hwcaps and legacy hwcap subdirectories, and the compiled-in system directories.

The facts come from the target's ELF machine and the root's own glibc, never from the host
alone: the host CPU's flags count only for objects of the host's machine (the image runs
here, or on a machine like this one); for a foreign machine (an arm64 root on an amd64
host) the CPU is unknown, so ld.so is taken to run on one with every hwcap glibc treats as
important for that machine. glibc 2.37 dropped the legacy hwcap subdirectories (tls,
$PLATFORM, x86_64...): a root whose glibc is newer gets only the glibc-hwcaps ones.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache

from ..errors import ClosureError
from ..root import Root

# e_machine -> Debian multiarch triplet
MULTIARCH = {
    (64, 62): "x86_64-linux-gnu", (32, 3): "i386-linux-gnu", (32, 62): "x86_64-linux-gnux32",
    (64, 183): "aarch64-linux-gnu", (32, 40): "arm-linux-gnueabihf",
    (64, 243): "riscv64-linux-gnu", (64, 21): "powerpc64le-linux-gnu", (64, 22): "s390x-linux-gnu",
}

# The loader glibc installs for each (class, e_machine): where a root's glibc release is read.
GLIBC_LOADER = {
    (64, 62): "/lib64/ld-linux-x86-64.so.2", (32, 3): "/lib/ld-linux.so.2",
    (32, 62): "/libx32/ld-linux-x32.so.2", (64, 183): "/lib/ld-linux-aarch64.so.1",
    (32, 40): "/lib/ld-linux-armhf.so.3", (64, 243): "/lib/ld-linux-riscv64-lp64d.so.1",
    (64, 21): "/lib64/ld64.so.2", (64, 22): "/lib/ld64.so.1",
}
# AT_PLATFORM as the kernel (or qemu-user) sets it for a process of that machine.
AT_PLATFORM = {(64, 62): "x86_64", (64, 183): "aarch64"}
# Legacy hwcap components a foreign machine's ld.so searches besides tls and AT_PLATFORM,
# in the order _dl_important_hwcaps nests them (tls outermost): glibc's HWCAP_IMPORTANT
# (sysdeps/unix/sysv/linux/*/dl-procinfo.h) on a CPU that has those bits. aarch64:
# HWCAP_ATOMICS ("atomics", ARMv8.1 LSE). x86-64: HWCAP_X86_64, always set.
FOREIGN_LEGACY = {(64, 62): ("tls", "x86_64"), (64, 183): ("tls", "aarch64", "atomics")}
LEGACY_HWCAPS_UNTIL = (2, 36)     # glibc 2.37 removed them
_RELEASE = re.compile(rb"release version (\d+)\.(\d+)")
_HOST_MACHINE = {"x86_64": (64, 62), "aarch64": (64, 183)}


@dataclass(frozen=True)
class Platform:
    lib: str                      # what $LIB expands to
    platform: str                 # what $PLATFORM expands to
    subdirs: tuple[str, ...]      # hwcap subdirectories tried in each search dir, best first
    system_dirs: tuple[str, ...]
    hwcaps: tuple[str, ...] = ()  # the glibc-hwcaps levels among them (x86-64-v3...), best first


@lru_cache(maxsize=None)
def _cpu_flags() -> frozenset[str]:
    """The CPU's flags, plus "vendor:<vendor_id>" (ld.so names platforms on Intel only)."""
    out: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id") and not any(x.startswith("vendor:") for x in out):
                    out.add("vendor:" + line.split(":", 1)[1].strip())
                elif line.startswith("flags"):
                    return frozenset(out | set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return frozenset(out)


def _x86_64_levels(flags: frozenset[str]) -> tuple[str, ...]:
    v2 = {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"}
    v3 = v2 | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
    v4 = v3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
    return tuple(name for name, need in (("x86-64-v4", v4), ("x86-64-v3", v3), ("x86-64-v2", v2))
                 if need <= flags)


def _legacy(components: list[str]) -> tuple[str, ...]:
    """glibc < 2.37 tries every subset of the hwcap components, first component most
    significant: tls/haswell/x86_64, tls/haswell, tls/x86_64, tls, haswell/x86_64, ..."""
    n = len(components)
    out = []
    for mask in range((1 << n) - 1, 0, -1):
        out.append("/".join(c for i, c in enumerate(components) if mask & (1 << (n - 1 - i))))
    return tuple(out)


def _intel_platform(flags: frozenset[str]) -> tuple[str, bool]:
    """($PLATFORM, whether the avx512_1 hwcap is set), as glibc's init_cpu_features decides:
    only on Intel CPUs is AT_PLATFORM ("x86_64") replaced by xeon_phi or haswell ("abm" is
    how /proc/cpuinfo spells LZCNT)."""
    if "vendor:GenuineIntel" not in flags:
        return "x86_64", False
    plat, avx512_1 = "x86_64", False
    if "avx512cd" in flags:
        if "avx512er" in flags:
            plat = "xeon_phi" if "avx512pf" in flags else plat
        else:
            avx512_1 = {"avx512bw", "avx512dq", "avx512vl"} <= flags
    if plat == "x86_64" and {"avx2", "fma", "bmi1", "bmi2", "abm", "movbe", "popcnt"} <= flags:
        plat = "haswell"
    return plat, avx512_1


def glibc_release(root: Root, elfclass: int, machine: int) -> tuple[int, int] | None:
    """The glibc release of the root's loader for that machine ("... release version 2.41."
    as `ld.so --version` prints it), None when the root has no such glibc loader."""
    path = GLIBC_LOADER.get((elfclass, machine))
    try:
        if path is None or not root.is_file(path):
            return None
        m = _RELEASE.search(root.read_bytes(root.resolve(path).path))
    except (OSError, ValueError, ClosureError):
        return None
    return (int(m.group(1)), int(m.group(2))) if m else None


def host_machine() -> tuple[int, int] | None:
    return _HOST_MACHINE.get(os.uname().machine)


def root_platform(root: Root, elfclass: int, machine: int) -> Platform:
    """The Platform of objects of that class and machine in the root: its glibc decides
    whether legacy hwcap subdirectories exist; the host CPU counts only when the machine
    is the host's."""
    release = glibc_release(root, elfclass, machine)
    legacy = release is None or release <= LEGACY_HWCAPS_UNTIL
    return platform_for(elfclass, machine, (elfclass, machine) == host_machine(), legacy)


@lru_cache(maxsize=None)
def platform_for(elfclass: int, machine: int, native: bool, legacy: bool = True) -> Platform:
    """native: the host CPU is the one ld.so runs on. legacy: glibc < 2.37."""
    triplet = MULTIARCH.get((elfclass, machine))
    lib = f"lib/{triplet}" if triplet else ("lib64" if elfclass == 64 else "lib")
    system = (f"/lib/{triplet}", f"/usr/lib/{triplet}") if triplet else ()
    if elfclass == 64 and not triplet:
        system += ("/lib64", "/usr/lib64")
    system += ("/lib", "/usr/lib")
    plat = AT_PLATFORM.get((elfclass, machine), "")
    if not (native and (elfclass, machine) == (64, 62)):
        comps = FOREIGN_LEGACY.get((elfclass, machine), ())
        return Platform(lib, plat, _legacy(list(comps)) if legacy else (), system)
    flags = _cpu_flags()
    levels = _x86_64_levels(flags)
    plat, avx512_1 = _intel_platform(flags)
    comps = ["tls", plat] if plat != "x86_64" else ["tls"]
    if avx512_1:
        comps.append("avx512_1")
    comps.append("x86_64")
    subdirs = tuple(f"glibc-hwcaps/{v}" for v in levels) + (_legacy(comps) if legacy else ())
    return Platform(lib, plat, subdirs, system, levels)

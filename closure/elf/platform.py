"""What the loader substitutes and searches that depends on the machine: $LIB, $PLATFORM,
glibc-hwcaps and legacy hwcap subdirectories, and the compiled-in system directories."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

# e_machine -> Debian multiarch triplet
MULTIARCH = {
    (64, 62): "x86_64-linux-gnu", (32, 3): "i386-linux-gnu", (32, 62): "x86_64-linux-gnux32",
    (64, 183): "aarch64-linux-gnu", (32, 40): "arm-linux-gnueabihf",
    (64, 243): "riscv64-linux-gnu", (64, 21): "powerpc64le-linux-gnu", (64, 22): "s390x-linux-gnu",
}


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


@lru_cache(maxsize=None)
def platform_for(elfclass: int, machine: int, native: bool) -> Platform:
    triplet = MULTIARCH.get((elfclass, machine))
    lib = f"lib/{triplet}" if triplet else ("lib64" if elfclass == 64 else "lib")
    system = (f"/lib/{triplet}", f"/usr/lib/{triplet}") if triplet else ()
    if elfclass == 64 and not triplet:
        system += ("/lib64", "/usr/lib64")
    system += ("/lib", "/usr/lib")
    if not (native and (elfclass, machine) == (64, 62)):
        return Platform(lib, "", (), system)
    flags = _cpu_flags()
    levels = _x86_64_levels(flags)
    plat, avx512_1 = _intel_platform(flags)
    comps = ["tls", plat] if plat != "x86_64" else ["tls"]
    if avx512_1:
        comps.append("avx512_1")
    comps.append("x86_64")
    subdirs = tuple(f"glibc-hwcaps/{v}" for v in levels) + _legacy(comps)
    return Platform(lib, plat, subdirs, system, levels)

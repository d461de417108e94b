"""The loader's directory knowledge: /etc/ld.so.cache (binary, new format) parsed directly,
with /etc/ld.so.conf (+ `include` globs) as the fallback when a root has no cache."""
from __future__ import annotations

import fnmatch
import posixpath
import struct
from dataclasses import dataclass

from ..errors import BadInput
from ..root import Root

CACHE_MAGIC_NEW = b"glibc-ld.so.cache1.1"
CACHE_MAGIC_OLD = b"ld.so-1.7.0"
FLAG_TYPE_MASK = 0x00FF
FLAG_ELF_LIBC6 = 0x0003
FLAG_REQUIRED_MASK = 0xFF00
HWCAP_EXTENSION = 1 << 62
MAX_CACHE = 64 << 20    # a full distribution's cache is ~1 MB: a bigger one is ignored, not read

# The cache's arch flags for each (class, e_machine): the loader only accepts entries whose
# flags equal its own _DL_CACHE_DEFAULT_ID.
ARCH_CACHE_FLAGS = {
    (64, 62): 0x0300,    # x86-64
    (32, 62): 0x0800,    # x32
    (32, 3): 0x0000,     # i386
    (64, 183): 0x0A00,   # aarch64
    (64, 243): 0x0F00,   # riscv64 lp64d
    (64, 21): 0x0500,    # ppc64
    (64, 22): 0x0400,    # s390x
    (32, 40): 0x0900,    # arm hard-float (FLAG_ARM_LIBHF)
}


@dataclass(frozen=True)
class CacheEntry:
    name: str
    path: str
    flags: int
    hwcap_subdir: str | None   # glibc-hwcaps subdirectory name, if any


def parse_cache(data: bytes) -> tuple[CacheEntry, ...]:
    """Entries of an ld.so.cache image, in file order. Returns () for unknown formats."""
    start = 0
    if data.startswith(CACHE_MAGIC_OLD):
        # Old-format prefix: header (magic + nlibs) and 12-byte entries, then the new
        # format aligned to 8 bytes.
        nlibs = struct.unpack_from("<I", data, len(CACHE_MAGIC_OLD) + 1)[0]
        start = len(CACHE_MAGIC_OLD) + 1 + 4 + nlibs * 12
        start = (start + 7) & ~7
    if data[start:start + len(CACHE_MAGIC_NEW)] != CACHE_MAGIC_NEW:
        return ()
    nlibs, _len_strings, _flags, ext_off = struct.unpack_from("<IIB3xI", data, start + 20)
    hwcaps = _hwcap_strings(data, ext_off) if ext_off else ()
    base = start + 48
    if base + nlibs * 24 > len(data):     # a hostile count (2**28) is refused, not looped over
        raise ValueError(f"ld.so.cache claims {nlibs} entries, more than it holds")
    out = []
    for i in range(nlibs):
        flags, key, value, _osv, hwcap = struct.unpack_from("<iIIIQ", data, base + i * 24)
        sub = None
        if hwcap & HWCAP_EXTENSION:
            idx = hwcap & 0xFFFFFFFF
            sub = hwcaps[idx] if idx < len(hwcaps) else None
        # String offsets in the new format are relative to the start of the new-format header.
        out.append(CacheEntry(_cstr(data, start + key), _cstr(data, start + value), flags, sub))
    return tuple(out)


def _cstr(data: bytes, off: int) -> str:
    return data[off:data.index(b"\0", off)].decode("utf-8", "surrogateescape")


def _hwcap_strings(data: bytes, ext_off: int) -> tuple[str, ...]:
    # Extension directory: magic u32, count u32, then {tag u32, flags u32, offset u32, size u32}.
    if ext_off + 8 > len(data) or struct.unpack_from("<I", data, ext_off)[0] != 0xEAA42174:
        return ()
    count = struct.unpack_from("<I", data, ext_off + 4)[0]
    if ext_off + 8 + count * 16 > len(data):
        raise ValueError(f"ld.so.cache extension claims {count} sections, more than it holds")
    for i in range(count):
        tag, _fl, off, size = struct.unpack_from("<IIII", data, ext_off + 8 + i * 16)
        if tag == 1:  # cache_extension_tag_glibc_hwcaps: u32 string offsets
            return tuple(_cstr(data, o) for o in struct.unpack_from(f"<{size // 4}I", data, off))
    return ()


def parse_ld_so_conf(root: Root, path: str = "/etc/ld.so.conf", _seen=None) -> tuple[str, ...]:
    """Directories listed in ld.so.conf, following `include` globs (sorted, as ldconfig does)."""
    seen = set() if _seen is None else _seen
    if path in seen or not _is_file(root, path):
        return ()
    seen.add(path)
    dirs: list[str] = []
    for raw in root.read_bytes(path).decode("utf-8", "replace").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include") and line[7:8].isspace():
            for pattern in line[8:].split():
                if not pattern.startswith("/"):
                    pattern = posixpath.join(posixpath.dirname(path), pattern)
                d, glob = posixpath.split(pattern)
                # glob() order is unspecified; ldconfig sorts, so must we.
                for name in sorted(fnmatch.filter(root.listdir(d), glob)):
                    dirs.extend(parse_ld_so_conf(root, posixpath.join(d, name), seen))
        elif line.startswith("hwcap"):
            continue
        else:
            for d in line.replace(",", " ").split():
                if "=" in d:  # old "dir=TYPE" syntax
                    d = d.split("=", 1)[0]
                dirs.append(d.rstrip("/") or "/")
    return tuple(dict.fromkeys(dirs))


def _is_file(root: Root, path: str) -> bool:
    """True for a regular file, False when absent or a directory; BadInput for a FIFO or
    device, on which the real loader (and ldconfig) would block forever."""
    if root.is_file(path) or not root.exists(path) or root.is_dir(path):
        return root.is_file(path)
    raise BadInput(f"{path} is not a regular file (a FIFO or device): the loader would block reading it")


class LdCache:
    """Name -> path lookups the way ld.so consults its cache, for one root and arch."""

    def __init__(self, root: Root):
        self.root = root
        self._by_name: dict[str, list[CacheEntry]] | None = None
        self._conf_dirs: tuple[str, ...] = ()

    def _load(self) -> dict[str, list[CacheEntry]]:
        if self._by_name is None:
            entries: tuple[CacheEntry, ...] = ()
            if _is_file(self.root, "/etc/ld.so.cache") \
                    and self.root.lstat(self.root.resolve("/etc/ld.so.cache").path).st_size <= MAX_CACHE:
                try:
                    entries = parse_cache(self.root.read_bytes("/etc/ld.so.cache"))
                except (struct.error, ValueError):
                    entries = ()
            self._by_name = {}
            for e in entries:
                self._by_name.setdefault(e.name, []).append(e)
            if not entries:
                self._conf_dirs = parse_ld_so_conf(self.root)
        return self._by_name

    def conf_dirs(self) -> tuple[str, ...]:
        """When there is no usable cache: the ld.so.conf dirs to search like a cache would."""
        self._load()
        return self._conf_dirs

    def lookup(self, name: str, elfclass: int, machine: int, hwcaps: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Candidate paths for name, best first (glibc-hwcaps ones the CPU supports first)."""
        want = ARCH_CACHE_FLAGS.get((elfclass, machine))
        best: list[tuple[int, str]] = []
        for e in self._load().get(name, ()):
            if (e.flags & FLAG_TYPE_MASK) != FLAG_ELF_LIBC6:
                continue
            if want is not None and (e.flags & FLAG_REQUIRED_MASK) != want:
                continue
            if e.hwcap_subdir is not None:
                if e.hwcap_subdir not in hwcaps:
                    continue
                best.append((hwcaps.index(e.hwcap_subdir), e.path))
            else:
                best.append((len(hwcaps), e.path))
        return tuple(p for _, p in sorted(best, key=lambda x: x[0]))

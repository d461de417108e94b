"""ELF facts as frozen data: what the loader and the recipes need to know of one object.

Headers are unpacked with `struct` straight from an mmap: pyelftools' construct-based parsing
costs ~6 ms an object, too slow for whole-system analysis. tests/unit/test_elf_reader.py
cross-checks every field against pyelftools over the host's ELF files.
"""
from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass

from ..errors import BadInput, NotElf
from ..root import Root

ELF_MAGIC = b"\x7fELF"
ET_EXEC, ET_DYN = 2, 3
PT_DYNAMIC, PT_INTERP, PT_LOAD = 2, 3, 1
SHT_PROGBITS, SHT_NOBITS, SHT_DYNSYM = 1, 8, 11
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4
DT_NULL, DT_NEEDED, DT_STRTAB, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 14, 15, 29
DT_FLAGS_1 = 0x6FFFFFFB
DT_AUXILIARY, DT_FILTER = 0x7FFFFFFD, 0x7FFFFFFF
DF_1_NODEFLIB = 0x800
DF_1_PIE = 0x08000000
SHN_UNDEF = 0
_SONAME_RE = re.compile(rb"lib[\w.+-]*\.so[\d.]*\0")


@dataclass(frozen=True)
class ElfInfo:
    path: str                     # image path it was read from (resolved)
    elfclass: int                 # 32 or 64
    little_endian: bool
    machine: int                  # e_machine
    osabi: int
    etype: int                    # e_type
    interp: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    soname: str | None
    flags_1: int
    has_dynamic: bool
    imports: frozenset[str]       # undefined dynamic symbols
    dlopen_strings: tuple[str, ...]  # lib*.so* strings, read only when dlopen is imported
    filter: tuple[str, ...] = ()     # DT_FILTER filtees: loaded like DT_NEEDED, must exist
    auxiliary: tuple[str, ...] = ()  # DT_AUXILIARY filtees: loaded when found, else ignored

    @property
    def is_pie(self) -> bool:
        return bool(self.flags_1 & DF_1_PIE)

    @property
    def nodeflib(self) -> bool:
        return bool(self.flags_1 & DF_1_NODEFLIB)

    @property
    def imports_dlopen(self) -> bool:
        return "dlopen" in self.imports or "dlmopen" in self.imports

    @property
    def kind(self) -> str:
        if self.has_dynamic and self.interp is None and self.etype == ET_DYN and not self.is_pie:
            return "shared-library"
        if self.interp is None:
            return "static-pie" if self.etype == ET_DYN else "static"
        return "pie" if self.etype == ET_DYN else "executable"

    def compatible(self, other: "ElfInfo") -> bool:
        """Same class, byte order and machine: what ld.so demands of a library."""
        return (self.elfclass, self.little_endian, self.machine) == (
            other.elfclass, other.little_endian, other.machine)


def read_header(data: bytes) -> tuple[int, bool, int]:
    """(class, little_endian, e_machine) from the first 20 bytes, or NotElf."""
    if len(data) < 20 or data[:4] != ELF_MAGIC or data[4] not in (1, 2) or data[5] not in (1, 2):
        raise NotElf("not an ELF file")
    le = data[5] == 1
    machine = struct.unpack_from("<H" if le else ">H", data, 18)[0]
    return 32 if data[4] == 1 else 64, le, machine


def is_elf(root: Root, ipath: str) -> bool:
    try:
        with root.open(ipath) as f:
            return f.read(4) == ELF_MAGIC
    except (OSError, BadInput):     # BadInput: a FIFO or device, refused unopened
        return False


def read_elf(root: Root, ipath: str) -> ElfInfo:
    """Read an ELF object inside root (ipath already resolved). NotElf for anything malformed."""
    return _read(root, ipath, lambda r: r.info())


def data_sections(root: Root, ipath: str) -> tuple[tuple[int, int], ...]:
    """(offset, size) of the sections a program's constants live in (allocated, not code:
    .rodata, .data...), in file order: where compiled-in paths are, without the code,
    symbol tables and debug info around them. () when the file has no section headers."""
    def ranges(r: "_Reader"):
        return tuple(sorted((s[2], s[3]) for s in r.sections()
                            if s[1] == SHT_PROGBITS and s[5] & SHF_ALLOC and not s[5] & SHF_EXECINSTR))
    return _read(root, ipath, ranges)


def _read(root: Root, ipath: str, fn):
    with root.open(ipath) as f:
        head = f.read(64)
        if not head:
            raise NotElf(f"empty file, not an ELF: {ipath}")
        try:
            read_header(head)
        except NotElf:
            raise NotElf(f"not an ELF file: {ipath}") from None
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return fn(_Reader(data, ipath))
    except (struct.error, IndexError, ValueError, UnicodeDecodeError, OverflowError) as e:
        # OverflowError: an offset past 2**63 (a fuzzed header) used as an index
        raise NotElf(f"truncated or malformed ELF ({e}): {ipath}") from None
    finally:
        data.close()


class _Reader:
    def __init__(self, data, path: str):
        self.d = data
        self.path = path
        self.elfclass, self.le, self.machine = read_header(data[:20])
        e = "<" if self.le else ">"
        self.e = e
        if self.elfclass == 64:
            (self.etype, _, _, _, self.phoff, self.shoff, _, _, self.phentsize, self.phnum,
             self.shentsize, self.shnum, self.shstrndx) = struct.unpack_from(e + "HHIQQQIHHHHHH", data, 16)
        else:
            (self.etype, _, _, _, self.phoff, self.shoff, _, _, self.phentsize, self.phnum,
             self.shentsize, self.shnum, self.shstrndx) = struct.unpack_from(e + "HHIIIIIHHHHHH", data, 16)

    def _need(self, off: int, size: int, what: str) -> None:
        if off < 0 or size < 0 or off + size > len(self.d):
            raise NotElf(f"truncated ELF ({what} past end of file): {self.path}")

    def segments(self):
        """(type, offset, vaddr, filesz) of each program header."""
        fmt = self.e + ("IIQQQQQQ" if self.elfclass == 64 else "IIIIIIII")
        size = struct.calcsize(fmt)
        self._need(self.phoff, self.phnum * size, "program headers")
        for i in range(self.phnum):
            f = struct.unpack_from(fmt, self.d, self.phoff + i * self.phentsize)
            if self.elfclass == 64:
                yield f[0], f[2], f[3], f[5]
            else:
                yield f[0], f[1], f[2], f[4]

    def sections(self):
        """(name offset, type, offset, size, link, flags) of each section header."""
        if not self.shoff or not self.shnum:
            return []
        fmt = self.e + ("IIQQQQIIQQ" if self.elfclass == 64 else "IIIIIIIIII")
        size = struct.calcsize(fmt)
        self._need(self.shoff, self.shnum * size, "section headers")
        out = []
        for i in range(self.shnum):
            f = struct.unpack_from(fmt, self.d, self.shoff + i * self.shentsize)
            out.append((f[0], f[1], f[4], f[5], f[6], f[2]))
        return out

    def cstr(self, off: int) -> str:
        end = self.d.find(b"\0", off)
        if end < 0:
            raise NotElf(f"truncated ELF (unterminated string): {self.path}")
        return self.d[off:end].decode("utf-8", "surrogateescape")

    def info(self) -> ElfInfo:
        interp, dyn, loads = None, None, []
        for ptype, off, vaddr, filesz in self.segments():
            if ptype == PT_INTERP:
                self._need(off, filesz, "PT_INTERP")
                interp = self.d[off:off + filesz].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif ptype == PT_DYNAMIC:
                dyn = (off, filesz)
            elif ptype == PT_LOAD:
                loads.append((vaddr, off, filesz))
        needed, rpath, runpath, soname, flags_1 = [], (), (), None, 0
        filtees: dict[int, list[str]] = {DT_FILTER: [], DT_AUXILIARY: []}
        if dyn is not None:
            tags = self._dynamic(*dyn)
            strtab = next((v for t, v in tags if t == DT_STRTAB), None)
            stroff = self._vaddr_to_offset(loads, strtab) if strtab is not None else None
            for t, v in tags:
                if t in (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH, DT_FILTER, DT_AUXILIARY):
                    if stroff is None:
                        raise NotElf(f"malformed ELF (no DT_STRTAB): {self.path}")
                    s = self.cstr(stroff + v)
                    if t == DT_NEEDED:
                        needed.append(s)
                    elif t == DT_SONAME:
                        soname = s
                    elif t in filtees:
                        filtees[t].append(s)
                    elif t == DT_RPATH:
                        rpath += tuple(s.split(":"))
                    else:
                        runpath += tuple(s.split(":"))
                elif t == DT_FLAGS_1:
                    flags_1 = v
        secs = self.sections()
        imports = self._undefined_symbols(secs)
        dl = "dlopen" in imports or "dlmopen" in imports
        return ElfInfo(
            path=self.path, elfclass=self.elfclass, little_endian=self.le, machine=self.machine,
            osabi=self.d[7], etype=self.etype, interp=interp, needed=tuple(needed), rpath=rpath,
            runpath=runpath, soname=soname, flags_1=flags_1, has_dynamic=dyn is not None,
            imports=imports, dlopen_strings=self._soname_strings(secs) if dl else (),
            filter=tuple(filtees[DT_FILTER]), auxiliary=tuple(filtees[DT_AUXILIARY]),
        )

    def _dynamic(self, off: int, size: int) -> list[tuple[int, int]]:
        fmt = self.e + ("qQ" if self.elfclass == 64 else "iI")
        width = struct.calcsize(fmt)
        self._need(off, size, "PT_DYNAMIC")
        tags = []
        for t, v in struct.iter_unpack(fmt, self.d[off:off + size - size % width]):
            if t == DT_NULL:
                break
            tags.append((t, v))
        return tags

    def _vaddr_to_offset(self, loads, addr: int) -> int:
        for vaddr, off, filesz in loads:
            if vaddr <= addr < vaddr + filesz:
                return addr - vaddr + off
        raise NotElf(f"malformed ELF (DT_STRTAB outside any PT_LOAD): {self.path}")

    def _section(self, secs, sh_type: int):
        return next((s for s in secs if s[1] == sh_type), None)

    def _bytes(self, sec) -> bytes:
        if sec is None or sec[1] == SHT_NOBITS:
            return b""
        self._need(sec[2], sec[3], "section")
        return self.d[sec[2]:sec[2] + sec[3]]

    def _undefined_symbols(self, secs) -> frozenset[str]:
        dynsym = self._section(secs, SHT_DYNSYM)
        if dynsym is None or dynsym[4] >= len(secs):
            return frozenset()
        syms, strs = self._bytes(dynsym), self._bytes(secs[dynsym[4]])
        fmt, shndx_i = (self.e + "IBBHQQ", 3) if self.elfclass == 64 else (self.e + "IIIBBH", 5)
        width = struct.calcsize(fmt)
        out = set()
        for sym in struct.iter_unpack(fmt, syms[: len(syms) - len(syms) % width]):
            if sym[shndx_i] == SHN_UNDEF and sym[0]:
                end = strs.find(b"\0", sym[0])
                out.add(strs[sym[0]:end].decode("utf-8", "replace"))
        return frozenset(out)

    def _soname_strings(self, secs) -> tuple[str, ...]:
        """Soname-looking strings in .rodata and .dynstr: candidates for dlopen()."""
        found = set()
        for sec in self._named(secs, (b".rodata", b".dynstr")):
            # Whole NUL-terminated strings only (a literal-led regex is the fast scan here).
            buf = self._bytes(sec)
            for m in _SONAME_RE.finditer(buf):
                if (m.start() == 0 or buf[m.start() - 1] == 0) and not m.group().endswith(b".\0"):
                    found.add(m.group()[:-1].decode())
        return tuple(sorted(found))

    def _named(self, secs, wanted):
        if self.shstrndx >= len(secs):
            return []
        shstr = self._bytes(secs[self.shstrndx])
        out = []
        for s in secs:
            end = shstr.find(b"\0", s[0])
            if shstr[s[0]:end] in wanted:
                out.append(s)
        return out

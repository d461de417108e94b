"""Dynamic symbols and symbol versions of one ELF object, read the way ld.so reads them.

Everything is found through the dynamic section (DT_SYMTAB, DT_STRTAB, DT_VERSYM,
DT_VERNEED, DT_VERDEF, DT_GNU_HASH / DT_HASH), not the section headers, which a loader
never looks at; the symbol count comes from the hash table ld.so would search. Read only
by `closure check` (never on the analysis path), with the same struct-over-mmap reader as
closure.elf.reader. tests/unit/test_elf_symbols.py cross-checks it against pyelftools.

Bad tables raise NotElf naming the file and the table.
"""
from __future__ import annotations

import itertools
import operator
import struct
import sys
from dataclasses import dataclass
from functools import cached_property

from ..errors import NotElf
from ..root import Root
from .reader import PT_DYNAMIC, PT_LOAD, _read, _Reader

DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT = 4, 5, 6, 10, 11
DT_GNU_HASH = 0x6FFFFEF5
DT_VERSYM, DT_VERDEF, DT_VERDEFNUM, DT_VERNEED, DT_VERNEEDNUM = (
    0x6FFFFFF0, 0x6FFFFFFC, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF)
STB_LOCAL, STB_GLOBAL, STB_WEAK, STB_GNU_UNIQUE = 0, 1, 2, 10
STT_TLS = 6
# The symbol types ld.so takes as a definition (dl-lookup.c ALLOWED_STT): NOTYPE, OBJECT,
# FUNC, COMMON, TLS, GNU_IFUNC.
ALLOWED_STT = frozenset({0, 1, 2, 5, 6, 10})
SHN_UNDEF, SHN_ABS = 0, 0xFFF1
VER_FLG_BASE, VER_FLG_WEAK = 1, 2
VERSYM_HIDDEN = 0x8000
MAX_SYMBOLS = 1 << 24          # more than any real object has: a bigger count is corrupt

TABLES = {
    "symtab": "symbol table (.dynsym, DT_SYMTAB)",
    "strtab": "string table (.dynstr, DT_STRTAB)",
    "versym": "symbol version table (.gnu.version, DT_VERSYM)",
    "verneed": "version needs (.gnu.version_r, DT_VERNEED)",
    "verdef": "version definitions (.gnu.version_d, DT_VERDEF)",
    "gnu_hash": "GNU hash table (.gnu.hash, DT_GNU_HASH)",
    "hash": "SysV hash table (.hash, DT_HASH)",
}


@dataclass(frozen=True)
class VersionNeed:
    """One version an object needs from one file (a Vernaux of a Verneed)."""

    file: str          # vn_file: the soname the version is needed from
    name: str          # vna_name, e.g. GLIBC_2.34
    index: int         # vna_other & 0x7fff: what .gnu.version entries of its symbols hold
    hidden: bool
    weak: bool         # VER_FLG_WEAK: a missing one is only a warning


@dataclass(frozen=True)
class VersionDef:
    name: str          # the first Verdaux's name; the base one is the soname
    index: int
    base: bool         # VER_FLG_BASE
    hidden: bool       # vd_ndx has the hidden bit
    parents: tuple[str, ...] = ()


@dataclass(frozen=True)
class Symbol:
    """One .dynsym entry, with its .gnu.version entry (0 when the object has none)."""

    name: str
    bind: int
    type: int
    shndx: int
    value: int
    versym: int

    @property
    def defined(self) -> bool:
        return self.shndx != SHN_UNDEF

    @property
    def weak(self) -> bool:
        return self.bind == STB_WEAK

    @property
    def hidden(self) -> bool:
        return bool(self.versym & VERSYM_HIDDEN)


class SymbolTable:
    """The dynamic symbols of one object. The table's bytes are copied out of the file and
    parsed on demand: exports only when a lookup needs them, imports from the part of the
    table for both (an undefined symbol may sit among the hashed ones: a weak
    __cxa_finalize does)."""

    def __init__(self, path: str, gnu_hash: bool, sysv_hash: bool, needs: tuple, defs: tuple,
                 has_verdef: bool, syms: bytes, strtab: bytes, versym: tuple | None,
                 elfclass: int, endian: str, count: int, hashed_from: int):
        self.path = path
        self.gnu_hash, self.sysv_hash = gnu_hash, sysv_hash
        self.needs: tuple[VersionNeed, ...] = needs
        self.defs: tuple[VersionDef, ...] = defs
        self.has_verdef = has_verdef
        self.has_versym = versym is not None
        self.count = count
        self.hashed_from = hashed_from     # first index the hash table reaches
        self._syms, self._str, self._versym = syms, strtab, versym
        self._fmt = endian + ("IBBHQQ" if elfclass == 64 else "IIIBBH")
        self._width = 24 if elfclass == 64 else 16
        self._c64 = elfclass == 64
        self._native = (endian == "<") == (sys.byteorder == "little")

    def _rows(self, lo: int, hi: int):
        """(index, name offset, st_info, st_shndx, st_value) of entries lo..hi-1."""
        w = self._width
        rows = struct.iter_unpack(self._fmt, self._syms[lo * w:hi * w])
        if self._c64:   # columns of the 64-bit layout (name, info, other, shndx, value, size)
            cols = tuple(zip(*rows))
            return zip(itertools.count(lo), cols[0], cols[1], cols[3], cols[4]) if cols else iter(())
        return ((i, name, info, shndx, value)
                for i, (name, value, _size, info, _other, shndx) in enumerate(rows, lo))

    def _name(self, off: int) -> bytes:
        end = self._str.find(b"\0", off)
        if end < 0:
            raise NotElf(f"corrupt {TABLES['symtab']} in {self.path}: a symbol name at "
                         f"{off:#x} lies outside the string table")
        return self._str[off:end]

    def symbols(self):
        """Every entry as a Symbol (index 0, the null symbol, left out)."""
        vs = self._versym
        for i, name, info, shndx, value in self._rows(1, self.count):
            yield Symbol(self._name(name).decode("utf-8", "surrogateescape") if name else "",
                         info >> 4, info & 0xF, shndx, value, vs[i] if vs else 0)

    @cached_property
    def exports(self) -> dict[bytes, int | tuple[int, ...]]:
        """name -> .gnu.version entry of the definition ld.so's lookup can return
        (do_lookup_x: a value, or SHN_ABS, or TLS; a data or code type; not local; in
        the part of the table the hash reaches: none without a hash table); a tuple of
        them when a name is defined several times (several versions). An int alone
        saves a tuple per name: the tables of a big image are all alive at once."""
        out: dict[bytes, int | tuple[int, ...]] = {}
        if not (self.gnu_hash or self.sysv_hash):
            return out
        names, infos, shndxs, values = self._columns()
        vs = self._versym or (0,) * self.count
        get, name_of = self._starts().get, self._name
        # The check's hot loop: only rows whose st_info passes are visited in Python.
        first = self.hashed_from
        for i in itertools.compress(range(first, self.count), infos[first:].translate(_EXPORTABLE)):
            shndx, name = shndxs[i], names[i]
            if shndx == SHN_UNDEF or not name:
                continue
            if values[i] == 0 and shndx != SHN_ABS and infos[i] & 0xF != STT_TLS:
                continue
            key = get(name) or name_of(name)
            have = out.get(key)
            if have is None:
                out[key] = vs[i]
            else:
                out[key] = (have if type(have) is tuple else (have,)) + (vs[i],)
        return out

    @cached_property
    def imports(self) -> tuple[tuple[bytes, int, bool], ...]:
        """(name, versym, weak) of every undefined, non-local symbol."""
        names, infos, shndxs, _values = self._columns()
        vs = self._versym or (0,) * self.count
        strtab, find = self._str, self._str.find
        out = []
        for i in itertools.compress(range(1, self.count), map(operator.not_, shndxs[1:])):
            bind, name = infos[i] >> 4, names[i]
            if name and bind != STB_LOCAL:
                end = find(b"\0", name)
                if end < 0:
                    self._name(name)   # raises: the name runs off the string table
                out.append((strtab[name:end], vs[i], bind == STB_WEAK))
        return tuple(out)

    def _columns(self) -> tuple[list[int], bytes, list[int], list[int]]:
        """st_name, st_info, st_shndx and st_value of every entry, as columns: strided
        slices of the table at C speed when its byte order is the machine's. Not kept:
        they would take more memory than the results built from them."""
        raw = self._syms
        if self._native:
            mv = memoryview(raw)
            if self._c64:
                return (mv.cast("I")[0::6].tolist(), raw[4::24], mv.cast("H")[3::12].tolist(),
                        mv.cast("Q")[1::3].tolist())
            return (mv.cast("I")[0::4].tolist(), raw[12::16], mv.cast("H")[7::8].tolist(),
                    mv.cast("I")[1::4].tolist())
        rows = list(self._rows(0, self.count))
        return ([r[1] for r in rows], bytes(r[2] for r in rows), [r[3] for r in rows],
                [r[4] for r in rows])

    def _starts(self) -> dict[int, bytes]:
        """The string table's names by offset, split out at C speed (a name starting
        inside another, a merged tail, is not here: _name finds it)."""
        parts = self._str.split(b"\0")
        offsets = map(operator.add, itertools.accumulate(map(len, parts), initial=0), range(len(parts)))
        return dict(zip(offsets, parts))

    @cached_property
    def version_names(self) -> dict[int, bytes]:
        """Version index -> name for the indexes .gnu.version entries can hold (ld.so's
        l_versions): the object's own non-base definitions and what it needs."""
        out = {d.index: d.name.encode("utf-8", "surrogateescape") for d in self.defs if not d.base}
        for n in self.needs:
            out[n.index] = n.name.encode("utf-8", "surrogateescape")
        return out

    @cached_property
    def defined_versions(self) -> frozenset[str]:
        return frozenset(d.name for d in self.defs)


_BINDS = frozenset({STB_GLOBAL, STB_WEAK, STB_GNU_UNIQUE})
# st_info -> 1 when ld.so's lookup takes a symbol of that binding and type, else 0.
_EXPORTABLE = bytes(int(i >> 4 in _BINDS and i & 0xF in ALLOWED_STT) for i in range(256))


def read_symbols(root: Root, ipath: str) -> SymbolTable:
    """The dynamic symbols and versions of an ELF object (ipath resolved) inside root."""
    return _read(root, ipath, lambda r: _Symbols(r).table())


class _Symbols:
    def __init__(self, r: _Reader):
        self.r = r
        self.e = r.e
        self.loads = []
        dyn = None
        for ptype, off, vaddr, filesz in r.segments():
            if ptype == PT_LOAD:
                self.loads.append((vaddr, off, filesz))
            elif ptype == PT_DYNAMIC:
                dyn = (off, filesz)
        self.tags: dict[int, int] = {}
        if dyn is not None:
            for t, v in r._dynamic(*dyn):
                self.tags.setdefault(t, v)   # ld.so keeps the first of each tag

    def bad(self, table: str, why: str) -> NotElf:
        return NotElf(f"corrupt {TABLES[table]} in {self.r.path}: {why}")

    def offset(self, table: str, addr: int, size: int) -> int:
        """File offset of [addr, addr+size) of memory, which must lie in one PT_LOAD."""
        for vaddr, off, filesz in self.loads:
            if vaddr <= addr < vaddr + filesz:
                if addr + size > vaddr + filesz or off + (addr - vaddr) + size > len(self.r.d):
                    raise self.bad(table, "runs past the end of its segment")
                return addr - vaddr + off
        raise self.bad(table, f"address {addr:#x} is outside every PT_LOAD segment")

    def segment_rest(self, table: str, addr: int) -> int:
        for vaddr, _off, filesz in self.loads:
            if vaddr <= addr < vaddr + filesz:
                return vaddr + filesz - addr
        raise self.bad(table, f"address {addr:#x} is outside every PT_LOAD segment")

    def u32s(self, table: str, off: int, count: int) -> tuple[int, ...]:
        if off < 0 or count < 0 or off + 4 * count > len(self.r.d):
            raise self.bad(table, "runs past the end of the file")
        return struct.unpack_from(f"{self.e}{count}I", self.r.d, off)

    def table(self) -> SymbolTable:
        t = self.tags
        gnu, sysv = DT_GNU_HASH in t, DT_HASH in t
        width = 24 if self.r.elfclass == 64 else 16
        if DT_SYMTAB not in t or DT_STRTAB not in t:
            return SymbolTable(self.r.path, gnu, sysv, (), (), False, b"\0" * width, b"\0",
                               None, self.r.elfclass, self.e, 1, 1)
        strsz = t[DT_STRSZ] if DT_STRSZ in t else self.segment_rest("strtab", t[DT_STRTAB])
        at = self.offset("strtab", t[DT_STRTAB], strsz)
        self.strtab = self.r.d[at:at + strsz]
        count, hashed_from = self.count()
        entsize = t.get(DT_SYMENT, width)
        if entsize != width:
            raise self.bad("symtab", f"entry size {entsize}, not {width}")
        at = self.offset("symtab", t[DT_SYMTAB], count * width)
        syms = self.r.d[at:at + count * width]
        versym = self.versym(count) if DT_VERSYM in t else None
        needs = self.needs() if DT_VERNEED in t else ()
        defs = self.defs() if DT_VERDEF in t else ()
        return SymbolTable(self.r.path, gnu, sysv, needs, defs, DT_VERDEF in t, syms,
                           self.strtab, versym, self.r.elfclass, self.e, count, hashed_from)

    def string(self, table: str, off: int) -> str:
        return self.bstring(table, off).decode("utf-8", "surrogateescape")

    def bstring(self, table: str, off: int) -> bytes:
        end = self.strtab.find(b"\0", off)
        if off < 0 or end < 0:
            raise self.bad(table, f"a name at {off:#x} lies outside the string table")
        return self.strtab[off:end]

    # -- how many symbols: from the hash table ld.so uses --------------------------------
    def count(self) -> tuple[int, int]:
        """(number of .dynsym entries, first index the hash table reaches)."""
        if DT_GNU_HASH in self.tags:
            return self.gnu_count()
        if DT_HASH in self.tags:
            off = self.offset("hash", self.tags[DT_HASH], 8)
            nbucket, nchain = self.u32s("hash", off, 2)
            if nchain > MAX_SYMBOLS:
                raise self.bad("hash", f"{nchain} chains")
            return nchain, 1
        return self.section_count(), 1

    def gnu_count(self) -> tuple[int, int]:
        word = 8 if self.r.elfclass == 64 else 4
        off = self.offset("gnu_hash", self.tags[DT_GNU_HASH], 16)
        nbuckets, symoffset, bloom_size, _shift = self.u32s("gnu_hash", off, 4)
        if nbuckets > MAX_SYMBOLS or symoffset > MAX_SYMBOLS or bloom_size > MAX_SYMBOLS:
            raise self.bad("gnu_hash", "impossible sizes in its header")
        buckets_at = off + 16 + bloom_size * word
        buckets = self.u32s("gnu_hash", buckets_at, nbuckets)
        last = max(buckets, default=0)
        if last < symoffset:
            return symoffset, symoffset
        chains_at = buckets_at + 4 * nbuckets
        i = last
        while True:   # the last bucket's chain runs to the last symbol (its low bit set)
            (h,) = self.u32s("gnu_hash", chains_at + 4 * (i - symoffset), 1)
            if h & 1:
                break
            i += 1
            if i > MAX_SYMBOLS:
                raise self.bad("gnu_hash", "a chain without an end")
        return i + 1, symoffset

    def section_count(self) -> int:
        """No hash table: the .dynsym section's size (ld.so could not look anything up)."""
        for s in self.r.sections():
            if s[1] == 11 and s[2] == self.offset("symtab", self.tags[DT_SYMTAB], 0):
                return s[3] // (24 if self.r.elfclass == 64 else 16)
        return 1

    # -- the tables ---------------------------------------------------------------------------
    def versym(self, count: int) -> tuple[int, ...]:
        off = self.offset("versym", self.tags[DT_VERSYM], 2 * count)
        return struct.unpack_from(f"{self.e}{count}H", self.r.d, off)

    def _chain(self, table: str, addr: int, num: int | None, head: str, link_at: int):
        """Offsets of the records of a Verneed/Verdef list (each record's vn_next/vd_next
        at link_at), stopping at num records or a zero link."""
        off = self.offset(table, addr, struct.calcsize(head))
        seen = 0
        while True:
            if off + struct.calcsize(head) > len(self.r.d):
                raise self.bad(table, "an entry runs past the end of the file")
            yield off
            seen += 1
            rec = struct.unpack_from(self.e + head, self.r.d, off)
            nxt = rec[link_at]
            if nxt == 0 or (num is not None and seen >= num):
                return
            if seen > 0xFFFF:
                raise self.bad(table, "more entries than version indexes")
            off += nxt

    def needs(self) -> tuple[VersionNeed, ...]:
        out = []
        for off in self._chain("verneed", self.tags[DT_VERNEED], self.tags.get(DT_VERNEEDNUM), "HHIII", 4):
            version, cnt, file_, aux, _nxt = struct.unpack_from(self.e + "HHIII", self.r.d, off)
            if version != 1:
                raise self.bad("verneed", f"unsupported record version {version}")
            file_name = self.string("verneed", file_)
            a = off + aux
            for _ in range(cnt):
                if a + 16 > len(self.r.d) or a < 0:
                    raise self.bad("verneed", "an entry runs past the end of the file")
                _hash, flags, other, name, anext = struct.unpack_from(self.e + "IHHII", self.r.d, a)
                out.append(VersionNeed(file_name, self.string("verneed", name), other & 0x7FFF,
                                       bool(other & VERSYM_HIDDEN), bool(flags & VER_FLG_WEAK)))
                if anext == 0:
                    break
                a += anext
        return tuple(out)

    def defs(self) -> tuple[VersionDef, ...]:
        out = []
        for off in self._chain("verdef", self.tags[DT_VERDEF], self.tags.get(DT_VERDEFNUM), "HHHHIII", 6):
            version, flags, ndx, cnt, _hash, aux, _nxt = struct.unpack_from(self.e + "HHHHIII", self.r.d, off)
            if version != 1:
                raise self.bad("verdef", f"unsupported record version {version}")
            names = []
            a = off + aux
            for _ in range(cnt):
                if a + 8 > len(self.r.d) or a < 0:
                    raise self.bad("verdef", "an entry runs past the end of the file")
                name, anext = struct.unpack_from(self.e + "II", self.r.d, a)
                names.append(self.string("verdef", name))
                if anext == 0:
                    break
                a += anext
            if not names:
                raise self.bad("verdef", "a definition without a name")
            out.append(VersionDef(names[0], ndx & 0x7FFF, bool(flags & VER_FLG_BASE),
                                  bool(ndx & VERSYM_HIDDEN), tuple(names[1:])))
        return tuple(out)

"""The .dynsym / symbol version reader against pyelftools over host ELF files; corrupt
tables are one NotElf naming the file and the table."""
from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from closure.elf.symbols import read_symbols
from closure.errors import NotElf
from closure.root import Root
from tests.elf_fixtures import cc, host_elf_sample, needs_gcc

def pyelftools_view(path):
    """(symbols, needs, defs) as pyelftools reads the sections; None without .dynsym."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection, GNUVerSymSection
    with open(path, "rb") as f:
        elf = ELFFile(f)
        dynsym = elf.get_section_by_name(".dynsym")
        if dynsym is None:
            return None
        versym = next((s for s in elf.iter_sections() if isinstance(s, GNUVerSymSection)), None)
        vers = [v["ndx"] for v in versym.iter_symbols()] if versym else None
        syms = []
        for i, s in enumerate(dynsym.iter_symbols()):
            if i == 0:
                continue
            ndx = vers[i] if vers else 0
            ndx = {"VER_NDX_LOCAL": 0, "VER_NDX_GLOBAL": 1}.get(ndx, ndx)
            shndx = s["st_shndx"]
            syms.append((s.name, s["st_info"]["bind"], shndx != "SHN_UNDEF", s["st_value"],
                         ndx if isinstance(ndx, int) else 0, s["st_info"]["type"], shndx))
        needs, defs = [], []
        for sec in elf.iter_sections():
            if isinstance(sec, GNUVerNeedSection):
                for vn, auxes in sec.iter_versions():
                    for aux in auxes:
                        needs.append((vn.name, aux.name, aux["vna_other"] & 0x7FFF,
                                      bool(aux["vna_flags"] & 2)))
            elif isinstance(sec, GNUVerDefSection):
                for vd, auxes in sec.iter_versions():
                    names = [a.name for a in auxes]
                    defs.append((names[0], vd["vd_ndx"] & 0x7FFF, bool(vd["vd_flags"] & 1)))
        gnu = elf.get_section_by_name(".gnu.hash")
        sysv = elf.get_section_by_name(".hash") is not None
        return syms, needs, defs, gnu and gnu.params["symoffset"], sysv


EXPORTED_TYPES = {"STT_NOTYPE", "STT_OBJECT", "STT_FUNC", "STT_COMMON", "STT_TLS", "STT_GNU_IFUNC", "STT_LOOS"}
BINDS = {"STB_LOCAL": 0, "STB_GLOBAL": 1, "STB_WEAK": 2, "STB_GNU_UNIQUE": 10, "STB_LOOS": 10}


def test_symbols_and_versions_agree_with_pyelftools():
    root = Root("/")
    compared = versioned = 0
    for p in host_elf_sample(60, seed=11):
        theirs = pyelftools_view(p)
        if theirs is None:
            continue
        syms, needs, defs, gnu, sysv = theirs
        st = read_symbols(root, p)
        ours = [(s.name, s.bind, s.defined, s.value, s.versym) for s in st.symbols()]
        want = [(n, BINDS[b], d, v, x) for n, b, d, v, x, _t, _s in syms]
        assert ours == want, p
        # What the checker uses: undefined non-local references, and the definitions
        # ld.so's lookup can return (a value or SHN_ABS or TLS, data or code, not local).
        imports = [(n.encode(), x, b == "STB_WEAK") for n, b, d, v, x, t, sh in syms
                   if not d and n and b != "STB_LOCAL"]
        assert list(st.imports) == imports, p
        exports = {}
        for i, (n, b, d, v, x, t, sh) in enumerate(syms, 1):
            if (d and n and i >= st.hashed_from and b in ("STB_GLOBAL", "STB_WEAK", "STB_GNU_UNIQUE", "STB_LOOS")
                    and t in EXPORTED_TYPES and (v or sh == "SHN_ABS" or t == "STT_TLS")):
                exports.setdefault(n.encode(), []).append(x)
        assert {k: list(v) if type(v) is tuple else [v] for k, v in st.exports.items()} == exports, p
        assert [(n.file, n.name, n.index, n.weak) for n in st.needs] == needs, p
        assert [(d.name, d.index, d.base) for d in st.defs] == defs, p
        assert (st.gnu_hash, st.sysv_hash) == (bool(gnu), sysv), p
        if gnu:
            assert st.hashed_from == gnu, p
        compared += 1
        versioned += bool(needs)
    assert compared > 30 and versioned > 20


def test_analysis_reads_no_symbol_versions():
    """`closure analyze` must not get slower: its reader never touches this module."""
    import subprocess
    import sys
    code = ("import sys; from closure.collect import collect, Options; from closure.root import Root; "
            "collect(['/usr/bin/true'], Options(root=Root('/'), recipes=False)); "
            "print('closure.elf.symbols' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


# -- corrupt tables -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def versioned_lib(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    d = tmp_path_factory.mktemp("symlib")
    script = d / "v.map"
    script.write_text("LIB_1.0 { global: one; local: *; };\n")
    return cc(d / "libv.so", "#include <stdio.h>\nint one(void) { return puts(\"x\"); }\n",
              f"-Wl,--version-script={script}", "-Wl,-soname,libv.so", shared=True)


def section(path: Path, name: str) -> tuple[int, int]:
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        s = ELFFile(f).get_section_by_name(name)
        return s["sh_offset"], s["sh_size"]


def corrupt(src: Path, dest: Path, name: str, at: int, value: bytes) -> Path:
    data = bytearray(src.read_bytes())
    off, _size = section(src, name)
    data[off + at:off + at + len(value)] = value
    dest.write_bytes(bytes(data))
    return dest


@pytest.mark.parametrize("sec, at, value, table", [
    (".gnu.version_r", 0, struct.pack("<H", 7), "version needs (.gnu.version_r, DT_VERNEED)"),
    (".gnu.version_r", 8, struct.pack("<I", 0x7FFFFFF0), "version needs (.gnu.version_r, DT_VERNEED)"),
    (".gnu.version_d", 0, struct.pack("<H", 9), "version definitions (.gnu.version_d, DT_VERDEF)"),
    (".gnu.version_d", 12, struct.pack("<I", 0x7FFFFFF0), "version definitions (.gnu.version_d, DT_VERDEF)"),
    (".dynsym", 24, struct.pack("<I", 0x7FFFFFF0), "symbol table (.dynsym, DT_SYMTAB)"),
    (".gnu.hash", 0, struct.pack("<I", 0x7FFFFFF0), "GNU hash table (.gnu.hash, DT_GNU_HASH)"),
])
@needs_gcc
def test_corrupt_table_is_one_error_naming_file_and_table(versioned_lib, tmp_path, sec, at, value, table):
    bad = corrupt(versioned_lib, tmp_path / "libbad.so", sec, at, value)
    with pytest.raises(NotElf) as e:
        st = read_symbols(Root("/"), str(bad))
        st.exports, st.imports, list(st.symbols())
    assert table in str(e.value) and str(bad) in str(e.value)
    assert "\n" not in str(e.value)

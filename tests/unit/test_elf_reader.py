"""The struct-based ELF reader against pyelftools, over real files; malformed input."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st

from closure.elf.reader import data_sections, read_elf
from closure.errors import NotElf
from closure.root import Root
from tests.elf_fixtures import host_elf_sample

def pyelftools_view(path):
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        elf = ELFFile(f)
        interp = None
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_INTERP":
                interp = seg.get_interp_name()
        needed, rpath, runpath, soname = [], [], [], None
        for sec in elf.iter_sections():
            if isinstance(sec, DynamicSection):
                for t in sec.iter_tags():
                    if t.entry.d_tag == "DT_NEEDED":
                        needed.append(t.needed)
                    elif t.entry.d_tag == "DT_RPATH":
                        rpath += t.rpath.split(":")
                    elif t.entry.d_tag == "DT_RUNPATH":
                        runpath += t.runpath.split(":")
                    elif t.entry.d_tag == "DT_SONAME":
                        soname = t.soname
        return interp, tuple(needed), tuple(rpath), tuple(runpath), soname, elf["e_machine"]


def test_reader_agrees_with_pyelftools():
    root = Root("/")
    files = host_elf_sample(150, seed=7)
    assert len(files) > 50
    for p in files:
        ours = read_elf(root, p)
        interp, needed, rpath, runpath, soname, machine = pyelftools_view(p)
        assert (ours.interp, ours.needed, ours.rpath, ours.runpath, ours.soname) == \
            (interp, needed, rpath, runpath, soname), p
        assert machine == "EM_X86_64" and ours.machine == 62


def test_data_sections_agree_with_pyelftools():
    from elftools.elf.elffile import ELFFile
    root = Root("/")
    for p in host_elf_sample(40, seed=7):
        with open(p, "rb") as f:
            want = sorted((s["sh_offset"], s["sh_size"]) for s in ELFFile(f).iter_sections()
                          if s["sh_type"] == "SHT_PROGBITS" and s["sh_flags"] & 0x2 and not s["sh_flags"] & 0x4)
        got = data_sections(root, p)
        assert list(got) == want and got, p
    with pytest.raises(NotElf):
        data_sections(root, "/etc/passwd")


def test_dlopen_import_detected():
    info = read_elf(Root("/"), os.path.realpath("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"))
    assert info.imports_dlopen and info.soname == "libcrypto.so.3"
    assert not read_elf(Root("/"), "/usr/bin/true").imports_dlopen


CURL = open("/usr/bin/curl", "rb").read()


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(CURL)), flips=st.lists(
    st.tuples(st.integers(min_value=0, max_value=4095), st.integers(min_value=0, max_value=255)), max_size=8))
def test_malformed_elf_never_crashes(tmp_path_factory, cut, flips):
    data = bytearray(CURL[:cut])
    for off, val in flips:
        if off < len(data):
            data[off] = val
    d = tmp_path_factory.mktemp("bad")
    (d / "x").write_bytes(bytes(data))
    try:
        read_elf(Root(str(d)), "/x")
    except NotElf:
        pass

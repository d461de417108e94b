"""One labelled assertion per loader rule, each checked against the real loader (ldd)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from closure.elf.ldso import Loader
from closure.elf.reader import read_elf
from closure.root import Root
from tests.elf_fixtures import cc, ldd_paths, lib, needs_gcc, rpath, set_machine

pytestmark = needs_gcc
MAIN_A = "int a(void); int main(void) { return a() - 1; }\n"


def found(tmp: Path, exe: Path, library_path=()) -> dict[str, str | None]:
    result = Loader(Root("/"), tuple(library_path)).load(str(exe))
    out = {}
    for e in result.edges:
        out[e.name] = os.path.realpath(e.path) if e.path else None
    return out


@pytest.fixture
def chain(tmp_path):
    """liba needs libb; libb lives only in deps/, which liba itself does not name."""
    deps = tmp_path / "deps"
    lib(deps / "libb.so", "b")
    lib(tmp_path / "lib" / "liba.so", "a", f"-L{deps}", "-lb")
    return tmp_path


def test_rpath_is_inherited_by_dependencies(chain):
    exe = cc(chain / "bin" / "rp", MAIN_A, f"-L{chain}/lib", "-la",
             *rpath(f"{chain}/lib:{chain}/deps", new_dtags=False))
    got = found(chain, exe)
    assert got["libb.so"] == str(chain / "deps" / "libb.so"), "DT_RPATH of the executable serves liba's deps"
    assert ldd_paths(exe)["libb.so"] == got["libb.so"]


def test_runpath_is_not_inherited(chain):
    exe = cc(chain / "bin" / "rnp", MAIN_A, f"-L{chain}/lib", "-la",
             *rpath(f"{chain}/lib:{chain}/deps", new_dtags=True))
    got = found(chain, exe)
    assert got["liba.so"] == str(chain / "lib" / "liba.so")
    assert got["libb.so"] is None, "DT_RUNPATH applies to the object's own deps only"
    assert ldd_paths(exe)["libb.so"] == "not found"


def test_requester_with_runpath_skips_the_rpath_chain(tmp_path):
    deps = tmp_path / "deps"
    lib(deps / "libb.so", "b")
    lib(tmp_path / "lib" / "liba.so", "a", f"-L{deps}", "-lb", *rpath(f"{tmp_path}/nowhere", True))
    exe = cc(tmp_path / "prog", MAIN_A, f"-L{tmp_path}/lib", "-la",
             *rpath(f"{tmp_path}/lib:{deps}", new_dtags=False))
    got = found(tmp_path, exe)
    assert got["liba.so"] == str(tmp_path / "lib" / "liba.so")
    assert got["libb.so"] is None, "liba has DT_RUNPATH: the executable's DT_RPATH is not consulted"
    assert ldd_paths(exe)["libb.so"] == "not found"


@pytest.mark.parametrize("new_dtags", [False, True], ids=["rpath", "runpath"])
def test_origin_expands_to_the_objects_directory(tmp_path, new_dtags):
    lib(tmp_path / "app" / "lib" / "liba.so", "a")
    exe = cc(tmp_path / "app" / "bin" / "prog", MAIN_A, f"-L{tmp_path}/app/lib", "-la",
             *rpath("$ORIGIN/../lib", new_dtags))
    got = found(tmp_path, exe)
    assert got["liba.so"] == str(tmp_path / "app" / "lib" / "liba.so"), "$ORIGIN resolves"
    assert ldd_paths(exe)["liba.so"] == got["liba.so"]


def test_origin_of_a_symlinked_program_is_its_real_directory(tmp_path):
    lib(tmp_path / "app" / "lib" / "liba.so", "a")
    exe = cc(tmp_path / "app" / "bin" / "prog", MAIN_A, f"-L{tmp_path}/app/lib", "-la",
             *rpath("$ORIGIN/../lib", True))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "prog").symlink_to(exe)
    # The kernel hands ld.so the real path; `ldd LINK` would wrongly use the link's dir.
    assert found(tmp_path, tmp_path / "bin" / "prog")["liba.so"] == str(tmp_path / "app" / "lib" / "liba.so")


def test_missing_library_is_reported_with_paths_tried(tmp_path):
    lib(tmp_path / "gone" / "libgone.so", "a")
    exe = cc(tmp_path / "prog", MAIN_A, f"-L{tmp_path}/gone", "-lgone", *rpath(f"{tmp_path}/nowhere", True))
    (tmp_path / "gone" / "libgone.so").unlink()
    result = Loader(Root("/")).load(str(exe))
    miss = [e for e in result.edges if e.path is None]
    assert [m.name for m in miss] == ["libgone.so"]
    assert f"{tmp_path}/nowhere/libgone.so" in miss[0].tried
    assert ldd_paths(exe)["libgone.so"] == "not found"


def test_foreign_machine_library_in_earlier_dir_is_skipped(tmp_path):
    lib(tmp_path / "first" / "liba.so", "a")
    lib(tmp_path / "second" / "liba.so", "a")
    set_machine(tmp_path / "first" / "liba.so", 183)  # aarch64
    exe = cc(tmp_path / "prog", MAIN_A, f"-L{tmp_path}/second", "-la",
             *rpath(f"{tmp_path}/first:{tmp_path}/second", True))
    got = found(tmp_path, exe)
    assert got["liba.so"] == str(tmp_path / "second" / "liba.so"), "wrong-machine candidate skipped"
    assert ldd_paths(exe)["liba.so"] == got["liba.so"]


def test_library_path_comes_before_runpath(tmp_path):
    lib(tmp_path / "rp" / "liba.so", "a")
    lib(tmp_path / "lp" / "liba.so", "a")
    exe = cc(tmp_path / "prog", MAIN_A, f"-L{tmp_path}/rp", "-la", *rpath(f"{tmp_path}/rp", True))
    got = found(tmp_path, exe, [str(tmp_path / "lp")])
    assert got["liba.so"] == str(tmp_path / "lp" / "liba.so"), "--library-path acts as LD_LIBRARY_PATH"
    assert ldd_paths(exe, {"LD_LIBRARY_PATH": str(tmp_path / "lp")})["liba.so"] == got["liba.so"]


def test_rpath_comes_before_library_path(tmp_path):
    lib(tmp_path / "rp" / "liba.so", "a")
    lib(tmp_path / "lp" / "liba.so", "a")
    exe = cc(tmp_path / "prog", MAIN_A, f"-L{tmp_path}/rp", "-la", *rpath(f"{tmp_path}/rp", False))
    got = found(tmp_path, exe, [str(tmp_path / "lp")])
    assert got["liba.so"] == str(tmp_path / "rp" / "liba.so"), "DT_RPATH beats LD_LIBRARY_PATH"
    assert ldd_paths(exe, {"LD_LIBRARY_PATH": str(tmp_path / "lp")})["liba.so"] == got["liba.so"]


def test_lib_and_platform_tokens(tmp_path):
    result_dirs = Loader(Root("/")).platform(read_elf(Root("/"), "/usr/bin/true"))
    libdir = tmp_path / result_dirs.lib
    lib(libdir / "liba.so", "a")
    exe = cc(tmp_path / "prog", MAIN_A, f"-L{libdir}", "-la", *rpath(f"{tmp_path}/$LIB", True))
    got = found(tmp_path, exe)
    assert got["liba.so"] == str(libdir / "liba.so"), "$LIB expands as ld.so does"
    assert ldd_paths(exe)["liba.so"] == got["liba.so"]


def test_static_and_static_pie_have_no_dependencies(tmp_path):
    if not os.path.exists("/usr/lib/x86_64-linux-gnu/libc.a"):
        pytest.skip("needs libc.a")
    src = "int main(void) { return 0; }\n"
    st = cc(tmp_path / "static", src, "-static")
    sp = cc(tmp_path / "spie", src, "-static-pie")
    for exe, kind in ((st, "static"), (sp, "static-pie")):
        info = read_elf(Root("/"), str(exe))
        assert info.kind == kind
        result = Loader(Root("/")).load(str(exe))
        assert result.edges == [] and result.interp is None

"""One labelled assertion per loader rule, each checked against the real loader (ldd)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from closure.elf.ldso import Loader
from closure.elf.reader import read_elf
from closure.root import Root
from tests.elf_fixtures import cc, ldd_paths, ldso_searched_subdirs, lib, needs_gcc, rpath, set_machine

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


def test_platform_token_matches_ldd(tmp_path):
    """$PLATFORM is what ld.so makes of AT_PLATFORM on this CPU (haswell, xeon_phi, x86_64)."""
    for plat in ("haswell", "xeon_phi", "x86_64"):
        lib(tmp_path / "p" / plat / "liba.so", "a")
    exe = cc(tmp_path / "prog", MAIN_A, f"-L{tmp_path}/p/x86_64", "-la", *rpath(f"{tmp_path}/p/$PLATFORM", True))
    got = found(tmp_path, exe)
    assert got["liba.so"] is not None and got["liba.so"] == ldd_paths(exe)["liba.so"], "$PLATFORM as ld.so expands it"


def test_hwcap_subdirectories_in_ldso_order(tmp_path):
    """glibc-hwcaps levels, then the legacy hwcap subdirectories, then the dir itself: with
    the best one removed each time, the loader's next pick is ld.so's next pick."""
    # Only what this CPU makes ld.so search (AMD: no haswell, no avx512_1), as it says.
    hwcaps, legacy = ldso_searched_subdirs()
    subs = [f"glibc-hwcaps/{h}" for h in hwcaps] + legacy + [""]
    for sub in subs:
        lib(tmp_path / "h" / sub / "liba.so", "a")
    exe = cc(tmp_path / "prog", MAIN_A, f"-L{tmp_path}/h", "-la", *rpath(f"{tmp_path}/h", True))
    picks = []
    for sub in subs:
        want = ldd_paths(exe)["liba.so"]
        assert found(tmp_path, exe)["liba.so"] == want, f"after removing {picks}"
        picks.append(want)
        os.unlink(want)
    assert picks[-1] == str(tmp_path / "h" / "liba.so")
    assert len(set(picks)) == len(subs), "every subdirectory was a pick once"


def set_flags_1(path: Path, flags: int) -> None:
    """Rewrite the value of an existing DT_FLAGS_1 entry (gcc's ld will not set NODEFLIB on a
    shared object; -z nodelete makes the entry)."""
    import struct
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        dyn = ELFFile(f).get_section_by_name(".dynamic")
        off, size = dyn["sh_offset"], dyn["sh_size"]
    data = bytearray(path.read_bytes())
    for at in range(off, off + size, 16):
        if struct.unpack_from("<q", data, at)[0] == 0x6FFFFFFB:
            struct.pack_into("<Q", data, at + 8, flags)
            path.write_bytes(bytes(data))
            return
    raise AssertionError(f"{path} has no DT_FLAGS_1")


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_nodeflib_takes_cache_entries_outside_the_system_dirs_only(tmp_path):
    """A DF_1_NODEFLIB library: ld.so still uses an ld.so.cache entry in /opt/lib2, not one
    under a system dir, and never the default dirs. Checked against the real ld.so in a
    chroot whose cache ldconfig wrote."""
    import shutil
    import subprocess
    root = tmp_path / "root"
    libdir = root / "lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    (root / "lib64").mkdir()
    shutil.copy(os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6"), libdir / "libc.so.6")
    shutil.copy(os.path.realpath("/lib64/ld-linux-x86-64.so.2"), root / "lib64/ld-linux-x86-64.so.2")
    lib(root / "opt/lib2/libb.so", "b")
    lib(libdir / "libc2.so", "c2")
    for name, dep, d in (("liba.so", "b", "opt/lib2"), ("libd.so", "c2", "lib/x86_64-linux-gnu")):
        lib(root / "opt/lib" / name, name[3], f"-L{root / d}", f"-l{dep}", "-Wl,-z,nodelete")
        set_flags_1(root / "opt/lib" / name, 0x800)  # DF_1_NODEFLIB
        assert read_elf(Root(str(root)), f"/opt/lib/{name}").nodeflib
    (root / "etc").mkdir()
    (root / "etc/ld.so.conf").write_text("/opt/lib\n/opt/lib2\n")
    subprocess.run(["ldconfig", "-r", str(root)], check=True, capture_output=True)
    link = [f"-Wl,-rpath-link,{root}/opt/lib2:{libdir}"]
    for prog, dep in (("a", "a"), ("d", "d")):
        cc(root / "bin" / prog, f"int {dep}(void); int main(void) {{ return {dep}() - 1; }}\n",
           f"-L{root}/opt/lib", f"-l{dep}", *link)

    def real(prog):
        return subprocess.run(["chroot", str(root), "/lib64/ld-linux-x86-64.so.2", "--list", f"/bin/{prog}"],
                              capture_output=True, text=True)

    def ours(prog):
        return {e.name: e.path for e in Loader(Root(str(root))).load(f"/bin/{prog}").edges}

    p = real("a")
    assert p.returncode == 0 and "libb.so => /opt/lib2/libb.so" in p.stdout, p.stdout + p.stderr
    assert ours("a")["libb.so"] == "/opt/lib2/libb.so", "a cache entry outside the system dirs is used"
    p = real("d")
    assert p.returncode != 0 and "libc2.so: cannot open shared object file" in p.stderr, p.stdout + p.stderr
    assert ours("d")["libc2.so"] is None, "neither the cache entry under /lib/... nor the default dirs"

"""Loader rules from glibc's elf/dl-load.c and rtld.c beyond the search path, each checked
against the real loader: DSTs in DT_NEEDED paths, filtees, /etc/ld.so.preload, relative
DT_NEEDED paths, and secure mode (a known difference, shown)."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from closure.collect import Collector, Options
from closure.elf.ldso import Loader
from closure.elf.platform import platform_for
from closure.root import Root
from tests.elf_fixtures import cc, ldd_paths, ldso_searched_subdirs, lib, needs_gcc, rpath

pytestmark = needs_gcc
MAIN_A = "int a(void); int main(void) { return a() - 1; }\n"
LDSO = "/lib64/ld-linux-x86-64.so.2"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chroot and setuid need root")


def edges(root: str, prog: str) -> dict[str, str | None]:
    return {e.name: e.path for e in Loader(Root(root)).load(prog).edges}


def ldd_mapped(exe: Path) -> set[str]:
    """Real paths of every object ldd maps (a name with a slash prints with no '=>')."""
    out = set()
    for line in subprocess.run(["ldd", str(exe)], capture_output=True, text=True).stdout.splitlines():
        where = line.split("=>")[-1].split(" (")[0].strip()
        if where.startswith("/"):
            out.add(os.path.realpath(where))
    return out


def test_hwcaps_levels_are_what_ldso_searches():
    """The glibc-hwcaps levels closure tries on this CPU are the ones `ld.so --help` marks
    searched (AMD and Intel differ)."""
    hwcaps, _legacy = ldso_searched_subdirs()
    assert platform_for(64, 62, True).hwcaps == tuple(hwcaps)


def test_origin_in_a_needed_path_is_expanded(tmp_path):
    """NEEDED [$ORIGIN/../lib/liba.so]: ld.so expands DSTs in a name with a slash."""
    lib(tmp_path / "app/lib/liba.so", "a", soname="$ORIGIN/../lib/liba.so")
    exe = cc(tmp_path / "app/bin/prog", MAIN_A, str(tmp_path / "app/lib/liba.so"))
    want = str(tmp_path / "app/lib/liba.so")
    got = edges("/", str(exe))["$ORIGIN/../lib/liba.so"]
    assert want in ldd_mapped(exe), "the real loader maps it"
    assert got == str(tmp_path / "app/bin/../lib/liba.so"), "and so does closure, spelled as ld.so opens it"
    assert subprocess.run([str(exe)]).returncode == 0


def test_lib_token_in_a_needed_path(tmp_path):
    plat = platform_for(64, 62, True)
    lib(tmp_path / plat.lib / "liba.so", "a", soname=f"{tmp_path}/$LIB/liba.so")
    exe = cc(tmp_path / "prog", MAIN_A, str(tmp_path / plat.lib / "liba.so"))
    want = str(tmp_path / plat.lib / "liba.so")
    assert want in ldd_mapped(exe)
    assert edges("/", str(exe))[f"{tmp_path}/$LIB/liba.so"] == want


def test_filter_and_auxiliary_filtees_are_loaded(tmp_path):
    """DT_FILTER and DT_AUXILIARY name objects ld.so loads like DT_NEEDED; a missing
    auxiliary filtee does not stop the program, and closure only warns about it."""
    lib(tmp_path / "libb.so", "b")
    for name, flag in (("libfa.so", "-f"), ("libfi.so", "-F")):
        lib(tmp_path / name, "a", f"-Wl,{flag},libb.so", f"-Wl,-f,libnone_{name}",
            *rpath(str(tmp_path), False))
    for name in ("libfa.so", "libfi.so"):
        exe = cc(tmp_path / f"m_{name}", MAIN_A, f"-L{tmp_path}", f"-l:{name}", *rpath(str(tmp_path), False))
        want = ldd_paths(exe)
        result = Loader(Root("/")).load(str(exe))
        got = {e.name: (os.path.realpath(e.path) if e.path else "not found") for e in result.edges}
        assert got["libb.so"] == want["libb.so"] == str(tmp_path / "libb.so"), f"{name}'s filtee is mapped"
        assert got[f"libnone_{name}"] == want[f"libnone_{name}"] == "not found"
        assert subprocess.run([str(exe)]).returncode == 0, "a missing auxiliary filtee is no error"
        c = Collector(Options(recipes=False))
        c.add_target(str(exe))
        c.walk_pending()
        assert c.closure.missing == [], "so it is not a missing dependency"
        assert any(f"auxiliary filtee libnone_{name}" in w for w in c.closure.warnings)
        assert str(tmp_path / "libb.so") in c.closure.entries
        # ldd run on the filter library itself maps no filtee (the nvtx3interop case).
        lone = lib(tmp_path / f"lone_{name}", "a", "-lc", f"-Wl,{flag},libb.so", *rpath(str(tmp_path), False))
        assert str(tmp_path / "libb.so") not in ldd_mapped(lone)
        assert "libb.so" not in edges("/", str(lone))


def _chroot_with_libc(root: Path) -> Path:
    libdir = root / "lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    (root / "lib64").mkdir()
    (root / "etc").mkdir()
    shutil.copy(os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6"), libdir / "libc.so.6")
    shutil.copy(os.path.realpath(LDSO), root / "lib64/ld-linux-x86-64.so.2")
    return libdir


def _ldso_list(root: Path, prog: str) -> subprocess.CompletedProcess:
    """The root's own loader listing prog, in a chroot (its cwd is the root's /)."""
    return subprocess.run(["chroot", str(root), LDSO, "--list", prog], capture_output=True, text=True)


@needs_root
def test_ld_so_preload_of_the_root_is_mapped(tmp_path):
    """/etc/ld.so.preload in the root: ld.so maps its objects before the program's
    DT_NEEDED (comments and ':' separators as rtld.c reads them); a missing one is ignored."""
    root = tmp_path / "root"
    libdir = _chroot_with_libc(root)
    lib(libdir / "libpre.so", "pre")
    lib(root / "opt/libpre2.so", "pre2")
    cc(root / "bin/prog", "int main(void) { return 0; }\n")
    (root / "etc/ld.so.preload").write_text("# site hooks\nlibpre.so:/opt/libpre2.so  libgone.so # gone\n")
    p = _ldso_list(root, "/bin/prog")
    assert p.returncode == 0, p.stderr
    assert "libpre.so => /lib/x86_64-linux-gnu/libpre.so" in p.stdout, p.stdout
    assert "/opt/libpre2.so" in p.stdout and "libgone.so" not in p.stdout, p.stdout
    got = edges(str(root), "/bin/prog")
    assert got["libpre.so"] == "/lib/x86_64-linux-gnu/libpre.so"
    assert got["/opt/libpre2.so"] == "/opt/libpre2.so"
    assert "libgone.so" not in got, "ld.so ignores a preload it cannot open"
    order = [o.real for o in Loader(Root(str(root))).load("/bin/prog").objects]
    assert order.index("/lib/x86_64-linux-gnu/libpre.so") < order.index("/lib/x86_64-linux-gnu/libc.so.6")
    c = Collector(Options(root=Root(str(root)), recipes=False))
    c.add_target("/bin/prog")
    c.walk_pending()
    assert "/etc/ld.so.preload" in c.closure.entries, "the image's loader needs the file too"


@needs_root
def test_relative_needed_path_is_taken_from_the_cwd_which_closure_takes_to_be_root(tmp_path):
    """NEEDED [lib/liba.so] (a slash, not absolute): ld.so opens it relative to the process's
    cwd. closure analyses for cwd / (the image's default WorkingDir): the same answer as
    ld.so started in /, and not the one it gives from another directory."""
    root = tmp_path / "root"
    _chroot_with_libc(root)
    lib(root / "lib/liba.so", "a", soname="lib/liba.so")
    cc(root / "bin/prog", MAIN_A, str(root / "lib/liba.so"))
    p = _ldso_list(root, "/bin/prog")
    assert "\tlib/liba.so (" in p.stdout, p.stdout + p.stderr
    assert edges(str(root), "/bin/prog")["lib/liba.so"] == "/lib/liba.so"
    elsewhere = subprocess.run([LDSO, "--list", str(root / "bin/prog")], cwd=tmp_path,
                               capture_output=True, text=True)
    assert elsewhere.returncode != 0 and "lib/liba.so" in elsewhere.stderr, "it depends on the cwd"


@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_secure_mode_is_a_known_difference(tmp_path):
    """A setuid program run by another user is in secure mode: ld.so drops $ORIGIN RUNPATH
    elements outside the trusted dirs. closure, like ldd, analyses the normal mode (it cannot
    know who will run the program; images drop setuid bits unless --keep-setuid): it
    resolves liba where the secure-mode process fails. Documented in the README."""
    top = Path(tempfile.mkdtemp(prefix="closure-secure-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)
        lib(top / "lib/liba.so", "a")
        exe = cc(top / "bin/prog", MAIN_A, f"-L{top}/lib", "-la", *rpath("$ORIGIN/../lib", True))
        for d in (top / "lib", top / "bin"):
            os.chmod(d, 0o755)
        assert os.path.realpath(edges("/", str(exe))["liba.so"]) == str(top / "lib/liba.so")
        assert ldd_paths(exe)["liba.so"] == str(top / "lib/liba.so")
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(exe)]
        assert subprocess.run(as_nobody, capture_output=True).returncode == 0, "not setuid: normal mode"
        os.chmod(exe, 0o755 | stat.S_ISUID)
        p = subprocess.run(as_nobody, capture_output=True, text=True)
        assert p.returncode == 127 and "liba.so" in p.stderr, "secure mode: $ORIGIN is ignored"
    finally:
        shutil.rmtree(top)


def test_origin_of_a_library_loaded_through_a_symlink_is_the_links_directory(tmp_path):
    """dl-object.c takes l_origin from the name the library was opened by, not its target:
    liba.so opened as lib/liba.so -> ../real/liba.so finds its $ORIGIN deps next to the link."""
    lib(tmp_path / "lib/libb.so", "b")
    lib(tmp_path / "real/libb.so", "b")  # a decoy next to the real file
    lib(tmp_path / "real/liba.so", "a", f"-L{tmp_path}/lib", "-lb", *rpath("$ORIGIN", True))
    (tmp_path / "lib/liba.so").symlink_to("../real/liba.so")
    exe = cc(tmp_path / "prog", MAIN_A, f"-L{tmp_path}/lib", "-la", *rpath(f"{tmp_path}/lib", True))
    want = ldd_paths(exe)["libb.so"]
    assert want == str(tmp_path / "lib/libb.so")
    assert edges("/", str(exe))["libb.so"] == want

"""The closure of real fixtures: dlopen strings, scripts, foreign roots, reasons."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from closure.collect import Options, collect
from closure.elf.ldcache import parse_ld_so_conf
from closure.model import REASON_KINDS
from closure.root import Root
from tests.elf_fixtures import cc, lib, needs_gcc, rpath

pytestmark = needs_gcc
TRIPLET = "x86_64-linux-gnu"
DLOPEN_MAIN = r"""
#include <dlfcn.h>
int main(void) { void *h = dlopen("libplug.so.1", RTLD_NOW); return h ? 0 : 1; }
"""


def reasons(closure, path):
    return [r.to_json() for r in closure.entries[path].reasons]


def test_dlopen_strings_are_followed(tmp_path):
    lib(tmp_path / "lib" / "libplug.so.1", "plug")
    exe = cc(tmp_path / "prog", DLOPEN_MAIN, "-ldl", *rpath(f"{tmp_path}/lib", True))
    c = collect([str(exe)], Options(recipes=False))
    plug = str(tmp_path / "lib" / "libplug.so.1")
    assert {"kind": "dlopen-string", "by": str(exe), "name": "libplug.so.1"} in reasons(c, plug)
    off = collect([str(exe)], Options(recipes=False, dlopen_scan=False))
    assert plug not in off.entries


def test_env_script_pulls_in_env_and_interpreter(tmp_path):
    script = tmp_path / "hello"
    script.write_text("#!/usr/bin/env sh\necho hi\n")
    script.chmod(0o755)
    c = collect([str(script)], Options(recipes=False))
    assert reasons(c, str(script)) == [{"kind": "target"}]
    env = c.entries["/usr/bin/env"]
    assert {"kind": "shebang", "by": str(script), "name": "/usr/bin/env"} in [r.to_json() for r in env.reasons]
    sh = Root("/").resolve(shutil.which("sh")).path  # dash, behind /bin/sh -> dash
    assert c.entries[sh].type == "file"
    assert any(r.kind == "shebang" for e in c.entries.values() for r in e.reasons if e.path.endswith("/sh"))
    # and the interpreter's own ELF closure follows
    assert any(p.endswith("/libc.so.6") for p in c.entries)


def test_entries_have_reasons_parents_and_sorted_json():
    c = collect(["/usr/bin/true"], Options(recipes=False))
    doc = c.to_json()
    paths = [e["path"] for e in doc["entries"]]
    assert paths == sorted(paths)
    assert all(e["reasons"] for e in doc["entries"])
    assert {r["kind"] for e in doc["entries"] for r in e["reasons"]} <= REASON_KINDS
    for p in paths:
        parent = os.path.dirname(p)
        assert parent == "/" or parent in paths, f"parent of {p} listed"
    assert doc["total_bytes"] == sum(e["size"] for e in doc["entries"] if e["type"] == "file")


def make_foreign_root(tmp_path: Path) -> Path:
    """A root whose loader and libc live where the host has none, reached only through
    absolute symlinks, with no ld.so.cache (ld.so.conf + include globs instead)."""
    root = tmp_path / "root"
    real_ld = os.path.realpath("/lib64/ld-linux-x86-64.so.2")
    (root / "opt/glibc").mkdir(parents=True)
    shutil.copy(real_ld, root / "opt/glibc/ld.so")
    shutil.copy(os.path.realpath(f"/lib/{TRIPLET}/libc.so.6"), root / "opt/glibc/libc.so.6")
    (root / "lib64").mkdir()
    (root / "lib64/ld-linux-x86-64.so.2").symlink_to("/opt/glibc/ld.so")  # absolute: inside root
    (root / "opt/libs").mkdir(parents=True)
    lib(root / "opt/libs/liba.so.1", "a")
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/liba.so.1").symlink_to("/opt/libs/liba.so.1")
    (root / "etc/ld.so.conf.d").mkdir(parents=True)
    (root / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    (root / "etc/ld.so.conf.d/b.conf").write_text("/opt/glibc\n")
    (root / "etc/ld.so.conf.d/a.conf").write_text("/opt/libs  # comment\n")
    cc(root / "usr/bin/app", "int a(void); int main(void){return a();}\n",
       f"-L{root}/opt/libs", "-l:liba.so.1")
    return root


def test_foreign_root_resolves_inside_the_root_only(tmp_path):
    root = make_foreign_root(tmp_path)
    assert parse_ld_so_conf(Root(str(root))) == ("/opt/libs", "/opt/glibc"), "include globs sorted"
    c = collect(["/usr/bin/app"], Options(root=Root(str(root)), recipes=False))
    assert c.missing == []
    assert c.entries["/lib64/ld-linux-x86-64.so.2"].target == "/opt/glibc/ld.so"
    assert c.entries["/opt/glibc/ld.so"].type == "file"
    assert c.entries["/opt/libs/liba.so.1"].type == "file"
    assert c.entries["/opt/glibc/libc.so.6"].type == "file"
    assert not any(p.startswith(f"/lib/{TRIPLET}") or p.startswith(f"/usr/lib/{TRIPLET}") for p in c.entries), \
        "nothing resolved on the host"
    assert all(e.source is None or os.path.exists(str(root) + e.source) for e in c.entries.values())


def test_symlink_escaping_with_dotdot_stays_in_root(tmp_path):
    root = tmp_path / "r"
    (root / "a").mkdir(parents=True)
    (root / "a/up").symlink_to("../../../../../etc")
    (root / "etc").mkdir()
    (root / "etc/hostname").write_text("inside\n")
    r = Root(str(root))
    assert r.resolve("/a/up/hostname").path == "/etc/hostname"
    assert r.read_bytes("/a/up/hostname") == b"inside\n"


def test_include_of_a_directory_takes_the_tree_links_kept(tmp_path):
    root = make_foreign_root(tmp_path)
    (root / "opt/data/sub").mkdir(parents=True)
    (root / "opt/data/sub/a.txt").write_text("a")
    (root / "opt/data/link").symlink_to("/nowhere")           # dangling: kept as a link
    c = collect(["/usr/bin/app"], Options(root=Root(str(root)), recipes=False,
                                          includes=(("/opt/data", "/opt/data"),)))
    e = c.entries
    assert e["/opt/data"].type == "dir" and e["/opt/data/sub"].type == "dir"
    assert e["/opt/data/sub/a.txt"].type == "file" and e["/opt/data/link"].target == "/nowhere"
    assert {"kind": "parent", "by": "/opt/data"} in reasons(c, "/opt/data/sub/a.txt")
    assert "/nowhere" not in e


def test_garbage_loader_config_in_a_root_is_no_traceback(tmp_path):
    """Random bytes as ld.so.cache and as an included ld.so.conf (NUL bytes in its dirs)."""
    root = make_foreign_root(tmp_path)
    (root / "etc/ld.so.cache").write_bytes(os.urandom(4096))
    (root / "etc/ld.so.conf.d/z.conf").write_bytes(b"/opt/\0bad\n" + os.urandom(2048))
    assert Root(str(root)).lstat("/opt/\0bad") is None
    c = collect(["/usr/bin/app"], Options(root=Root(str(root)), recipes=False))
    assert c.missing == [] and "/opt/libs/liba.so.1" in c.entries


@pytest.mark.skipif(shutil.which("ldconfig") is None and not os.path.exists("/sbin/ldconfig"),
                    reason="needs ldconfig")
def test_cache_of_a_foreign_root_is_read_and_kept_when_needed(tmp_path):
    root = make_foreign_root(tmp_path)
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    subprocess.run([ldconfig, "-r", str(root)], check=True, capture_output=True)
    assert (root / "etc/ld.so.cache").exists()
    c = collect(["/usr/bin/app"], Options(root=Root(str(root)), recipes=False))
    assert c.missing == []
    libs = [e for e in c.entries.values() for r in e.reasons if r.kind == "needed"]
    assert {e.path for e in libs} >= {"/opt/libs/liba.so.1", "/opt/glibc/libc.so.6"}
    # /opt/libs is no default dir: the image's loader needs the cache to find liba there
    cache = c.entries["/etc/ld.so.cache"]
    assert {"kind": "interp", "by": "/usr/bin/app", "name": "liba.so.1"} in [r.to_json() for r in cache.reasons]


def test_cache_is_not_added_when_default_dirs_suffice():
    c = collect(["/usr/bin/true"], Options(recipes=False))
    assert "/etc/ld.so.cache" not in c.entries


def test_dlopen_strings_one_level_deep_unless_asked(tmp_path):
    """prog names libplug (a string), libplug names libdeep (a string): libdeep is a guess
    upon a guess, followed only with --dlopen-depth 2."""
    d = tmp_path / "lib"
    lib(d / "libdeep.so.1", "deep")
    cc(d / "libplug.so.1", '#include <dlfcn.h>\nvoid *plug(void) { return dlopen("libdeep.so.1", RTLD_NOW); }\n',
       "-ldl", "-Wl,-soname,libplug.so.1", *rpath(str(d), True), shared=True)
    exe = cc(tmp_path / "prog", DLOPEN_MAIN, "-ldl", *rpath(str(d), True))
    one = collect([str(exe)], Options(recipes=False))
    assert str(d / "libplug.so.1") in one.entries and str(d / "libdeep.so.1") not in one.entries
    two = collect([str(exe)], Options(recipes=False, dlopen_depth=2))
    assert reasons(two, str(d / "libdeep.so.1")) == [
        {"kind": "dlopen-string", "by": str(d / "libplug.so.1"), "name": "libdeep.so.1"}]


def test_a_program_inside_another_root_analysed_on_the_host_is_warned_about(tmp_path):
    """A sysroot's program built without --root takes the host's libraries: a warning that
    names the --root meant, and --strict fails (analyze exit 1; build writes nothing)."""
    import shutil
    import subprocess
    import sys
    sysroot = tmp_path / "sysroot"
    (sysroot / "usr/bin").mkdir(parents=True)
    (sysroot / "etc").mkdir()
    (sysroot / "etc/os-release").write_text("ID=debian\n")
    shutil.copy("/usr/bin/true", sysroot / "usr/bin/true")
    c = collect([str(sysroot / "usr/bin/true")], Options(recipes=False))
    assert c.foreign_root == str(sysroot)
    assert any(f"give --root {sysroot}" in w for w in c.warnings)
    assert collect(["/usr/bin/true"], Options(recipes=False)).foreign_root is None
    cli = [sys.executable, "-m", "closure.cli.app"]
    p = subprocess.run(cli + ["analyze", str(sysroot / "usr/bin/true"), "--strict"], capture_output=True, text=True)
    assert p.returncode == 1 and "lies inside another root" in p.stderr
    out = tmp_path / "img.tar"
    p = subprocess.run(cli + ["build", str(sysroot / "usr/bin/true"), "--strict", "-o", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 1 and f"--root {sysroot}" in p.stderr and not out.exists()


def test_an_include_on_a_generated_file_wins_with_a_warning(tmp_path):
    """--include my-passwd:/etc/passwd is never silently replaced by the glibc recipe's file."""
    from closure.collect import Options, collect
    mine = tmp_path / "passwd"
    mine.write_text("root:x:0:0::/root:/bin/sh\nme:x:7:7::/:/bin/sh\n")
    c = collect(["/bin/true"], Options(includes=((str(mine), "/etc/passwd"),)))
    e = c.entries["/etc/passwd"]
    assert e.content is None and e.source == str(mine)
    assert [w for w in c.warnings if w.startswith("/etc/passwd: kept as --include gives it")]

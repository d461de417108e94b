"""`closure check` on gcc-built fixtures that must be caught: a program needing a symbol
version its library lacks (a newer build linked, an older one in the image), a missing
symbol, a library built against a newer glibc; each also seen by the real `ldd -r`. And
`closure build` / `closure slim` warning (or failing with --strict) on what they wrote."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from closure.elf.ldso import Loader
from closure.root import Root
from tests.elf_fixtures import cc

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
CLOSURE = [sys.executable, "-m", "closure.cli.app"]
RUNPATH = "-Wl,-rpath,$ORIGIN/../lib"


def closure(*args, cwd=None):
    return subprocess.run(CLOSURE + [str(a) for a in args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def version_script(d: Path, name: str, text: str) -> str:
    p = d / name
    p.write_text(text)
    return f"-Wl,--version-script={p}"


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory):
    """Programs in <d>/app/bin (RUNPATH $ORIGIN/../lib) linked against the newer builds;
    <d>/old holds the older builds an image gets instead."""
    d = tmp_path_factory.mktemp("check")
    new, old, app = d / "new", d / "old", d / "app"
    # libv: LIB_1.0 { one }, LIB_2.0 { two }; its older build has LIB_1.0 only.
    cc(new / "libv.so.1", "int one(void) { return 1; }\nint two(void) { return 2; }\n",
       "-Wl,-soname,libv.so.1",
       version_script(d, "v2.map", "LIB_1.0 { global: one; local: *; };\nLIB_2.0 { global: two; } LIB_1.0;\n"),
       shared=True)
    cc(old / "libv.so.1", "int one(void) { return 1; }\n", "-Wl,-soname,libv.so.1",
       version_script(d, "v1.map", "LIB_1.0 { global: one; local: *; };\n"), shared=True)
    # libx: unversioned; the older build lacks three().
    cc(new / "libx.so.1", "int three(void) { return 3; }\nint four(void) { return 4; }\n",
       "-Wl,-soname,libx.so.1", shared=True)
    cc(old / "libx.so.1", "int four(void) { return 4; }\n", "-Wl,-soname,libx.so.1", shared=True)
    # A stand-in for a newer glibc: soname libc.so.6, defining fancy@@GLIBC_2.99; libnew is
    # linked against it, as a library built on a newer distribution would be.
    fakec = cc(d / "fakec" / "libc.so.6", "int fancy(void) { return 9; }\n", "-nostdlib",
               "-Wl,-soname,libc.so.6",
               version_script(d, "c.map", "GLIBC_2.99 { global: fancy; local: *; };\n"), shared=True)
    cc(new / "libnew.so.1", "extern int fancy(void);\nint use_new(void) { return fancy(); }\n",
       "-nostdlib", "-Wl,-soname,libnew.so.1", str(fakec), shared=True)
    for lib in ("libv.so.1", "libx.so.1", "libnew.so.1"):
        (app / "lib").mkdir(parents=True, exist_ok=True)
        shutil.copy(new / lib, app / "lib" / lib)
    cc(app / "bin" / "needs_two", "int two(void);\nint main(void) { return two() - 2; }\n",
       f"-L{new}", "-l:libv.so.1", RUNPATH)
    cc(app / "bin" / "needs_three", "int three(void);\nint main(void) { return three() - 3; }\n",
       f"-L{new}", "-l:libx.so.1", RUNPATH)
    cc(app / "bin" / "uses_new", "int use_new(void);\nint main(void) { return use_new(); }\n",
       f"-L{new}", "-l:libnew.so.1", RUNPATH, "-Wl,--allow-shlib-undefined")
    cc(app / "bin" / "fine", "int one(void);\nint four(void);\nint main(void) { return one() + four() - 5; }\n",
       f"-L{new}", "-l:libv.so.1", "-l:libx.so.1", RUNPATH)
    return d


def make_root(tmp: Path, fixtures: Path, libs_from: Path) -> Path:
    """A rootfs: the host's loader and libc (where the host has them), /app/bin, and
    /app/lib holding the libraries of libs_from (old or new builds)."""
    root = tmp / "root"
    objects = Loader(Root("/")).load("/usr/bin/true").objects   # ld.so and libc, as mapped
    for o in objects[1:]:
        dest = root / o.real.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(o.real, dest)
        for name in o.names:
            if name.startswith("/") and name != o.real:   # the interpreter's spelling
                link = root / name.lstrip("/")
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    link.symlink_to(o.real)
    shutil.copytree(fixtures / "app" / "bin", root / "app" / "bin")
    (root / "app" / "lib").mkdir(parents=True)
    for lib in ("libv.so.1", "libx.so.1"):
        shutil.copy(libs_from / lib, root / "app" / "lib" / lib)
    shutil.copy(fixtures / "new" / "libnew.so.1", root / "app" / "lib" / "libnew.so.1")
    return root


def host_glibc() -> str:
    return os.confstr("CS_GNU_LIBC_VERSION").split()[-1]


@pytest.fixture(scope="session")
def old_root(fixtures, tmp_path_factory):
    return make_root(tmp_path_factory.mktemp("old"), fixtures, fixtures / "old")


def expected_old_root_lines():
    return {
        "/app/bin/needs_two: LIB_2.0 not found (needed from libv.so.1; /app/lib/libv.so.1 has up to LIB_1.0)",
        "/app/bin/needs_two: undefined symbol two, version LIB_2.0 (from libv.so.1)",
        "/app/bin/needs_three: undefined symbol three",
        f"/app/lib/libnew.so.1: GLIBC_2.99 not found (needed from libc.so.6; the image has glibc {host_glibc()}) (loaded by /app/bin/uses_new)",
        "/app/lib/libnew.so.1: undefined symbol fancy, version GLIBC_2.99 (from libc.so.6) (loaded by /app/bin/uses_new)",
    }


def test_rootfs_with_older_libraries_is_caught(old_root):
    p = closure("check", old_root)
    assert p.returncode == 1, p.stderr
    assert set(p.stdout.splitlines()) == expected_old_root_lines()
    assert "5 problems" in p.stderr


def schema_check(doc):
    import jsonschema
    from importlib.resources import files
    schema = json.loads(files("closure").joinpath("data/schemas/check.schema.json").read_text())
    jsonschema.validate(doc, schema)


def test_json_follows_the_shipped_schema(old_root):
    p = closure("check", old_root, "--json")
    doc = json.loads(p.stdout)
    schema_check(doc)
    assert {q["message"] for q in doc["problems"]} | {
        f"{q['message']} (loaded by {q['loadedBy'][0]})" for q in doc["problems"] if q["loadedBy"]} >= expected_old_root_lines()
    assert doc["ok"] is False and p.returncode == 1 and doc["mode"] == "rootfs"


def test_rootfs_with_the_libraries_linked_against_resolves(fixtures, tmp_path):
    root = make_root(tmp_path, fixtures, fixtures / "new")
    p = closure("check", root, "--json")
    doc = json.loads(p.stdout)
    schema_check(doc)
    # Only the newer-glibc library is left: the image's libc is the host's.
    assert {(q["kind"], q["object"], q["name"]) for q in doc["problems"]} == {
        ("version", "/app/lib/libnew.so.1", "GLIBC_2.99"),
        ("symbol", "/app/lib/libnew.so.1", "fancy")}
    assert doc["schemaVersion"] == "closure.check/1" and p.returncode == 1
    (root / "app" / "lib" / "libnew.so.1").unlink()
    (root / "app" / "bin" / "uses_new").unlink()
    p = closure("check", root)
    assert p.returncode == 0 and p.stdout == "" and "everything resolves" in p.stderr, p.stderr


@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs glibc's ldd")
def test_the_real_loader_sees_the_same_problems(fixtures, tmp_path):
    """ldd -r on the host, the programs beside the older libraries: what closure says."""
    host = tmp_path / "host"
    shutil.copytree(fixtures / "app" / "bin", host / "bin")
    (host / "lib").mkdir()
    for lib in ("libv.so.1", "libx.so.1"):
        shutil.copy(fixtures / "old" / lib, host / "lib" / lib)
    shutil.copy(fixtures / "new" / "libnew.so.1", host / "lib")
    for prog in ("needs_two", "needs_three", "uses_new", "fine"):
        exe = host / "bin" / prog
        real = subprocess.run(["ldd", "-r", str(exe)], capture_output=True, text=True)
        real_lines = {line.strip() for line in (real.stdout + real.stderr).splitlines()
                      if "not found" in line or "undefined symbol" in line}
        ours = closure("check", exe, "--json")
        doc = json.loads(ours.stdout)
        shown = set()
        for q in doc["problems"]:
            if q["kind"] == "symbol":
                ver = f", version {q['version']}" if q.get("version") else ""
                shown.add(f"undefined symbol: {q['name']}{ver}\t({q['object']})")
            else:
                shown.add(f"version `{q['name']}' not found (required by {q['object']})")
        want = set()
        for line in real_lines:
            if line.startswith("undefined symbol"):
                sym, _, obj = line.rpartition("(")
                want.add(f"{sym.strip()}\t({os.path.realpath(obj.rstrip(')'))})")
            else:
                want.add(line[line.index("version `"):].replace(line[line.rindex("by ") + 3:-1],
                                                                 os.path.realpath(line[line.rindex("by ") + 3:-1])))
        assert shown == want, prog
        assert (ours.returncode == 1) == bool(want)


def test_build_warns_and_strict_fails_before_writing(old_root, tmp_path):
    out = tmp_path / "img.tar"
    p = closure("build", "/app/bin/needs_two", "--root", old_root, "-o", out, "--no-recipes")
    assert p.returncode == 0, p.stderr
    assert ("closure: warning: /app/bin/needs_two: LIB_2.0 not found (needed from libv.so.1; "
            "/app/lib/libv.so.1 has up to LIB_1.0)") in p.stderr.splitlines()
    # The image it wrote is caught by `closure check IMAGE` the same way.
    c = closure("check", out)
    assert c.returncode == 1
    assert set(c.stdout.splitlines()) == {
        "/app/bin/needs_two: LIB_2.0 not found (needed from libv.so.1; /app/lib/libv.so.1 has up to LIB_1.0)",
        "/app/bin/needs_two: undefined symbol two, version LIB_2.0 (from libv.so.1)"}
    strict = tmp_path / "strict.tar"
    p = closure("build", "/app/bin/needs_two", "--root", old_root, "-o", strict, "--no-recipes", "--strict")
    assert p.returncode == 1 and not strict.exists()
    assert p.stderr.splitlines()[-1] == "closure: error: 2 link problems in the image (--strict)"


def test_an_excluded_library_is_caught_at_build(fixtures, tmp_path):
    root = make_root(tmp_path, fixtures, fixtures / "new")
    p = closure("build", "/app/bin/fine", "--root", root, "-o", tmp_path / "x.tar", "--no-recipes",
                "--exclude", "/app/lib/libx.so.1")
    assert "closure: warning: /app/bin/fine: libx.so.1 not found (needed library)" in p.stderr.splitlines()


def test_slim_warns_and_strict_fails(old_root, tmp_path):
    src = tmp_path / "src.tar"
    assert closure("build", "/app/bin/needs_three", "--root", old_root, "-o", src, "--no-recipes").returncode == 0
    p = closure("slim", src, "-o", tmp_path / "slim.tar", "--no-recipes")
    assert p.returncode == 0, p.stderr
    assert "closure: warning: /app/bin/needs_three: undefined symbol three" in p.stderr.splitlines()
    p = closure("slim", src, "-o", tmp_path / "slim2.tar", "--no-recipes", "--strict")
    assert p.returncode == 1 and not (tmp_path / "slim2.tar").exists()
    assert "undefined symbol three" in p.stderr and len(p.stderr.splitlines()) == 1 + p.stderr.count("warning")


def test_corrupt_version_table_in_a_rootfs_is_one_error(old_root, tmp_path):
    from tests.unit.test_elf_symbols import corrupt
    root = tmp_path / "r"
    shutil.copytree(old_root, root, symlinks=True)
    lib = root / "app" / "lib" / "libv.so.1"
    corrupt(lib, lib, ".gnu.version_d", 0, b"\x09\x00")
    p = closure("check", root)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.splitlines() == [
        f"closure: error: corrupt version definitions (.gnu.version_d, DT_VERDEF) in /app/lib/libv.so.1: "
        f"unsupported record version 9"]


def test_bad_inputs_exit_2(tmp_path):
    (tmp_path / "script").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    for args in (["/nonexistent/x"], [tmp_path / "script"], [tmp_path / "junk.tar"],
                 ["no-such-program-xyz"]):
        p = closure("check", *args)
        assert p.returncode == 2 and p.stdout == "", args
        assert len(p.stderr.splitlines()) == 1 and p.stderr.startswith("closure: error: "), p.stderr


def test_a_plugins_host_symbols_are_counted_not_reported(fixtures, tmp_path):
    """A library no program maps gets its symbols from whatever dlopens it: counted;
    --standalone reports them, as `ldd -r PLUGIN` would."""
    root = make_root(tmp_path, fixtures, fixtures / "new")
    (root / "app" / "lib" / "libnew.so.1").unlink()
    (root / "app" / "bin" / "uses_new").unlink()
    cc(root / "app" / "lib" / "plugins" / "plugin.so",
       "int host_func(void);\nint plugin_init(void) { return host_func(); }\n", shared=True)
    p = closure("check", root)
    assert p.returncode == 0 and p.stdout == "", p.stderr
    assert "1 symbols of 1 libraries no program maps are left to whatever loads them" in p.stderr
    p = closure("check", root, "--standalone")
    assert p.returncode == 1
    assert p.stdout.splitlines() == ["/app/lib/plugins/plugin.so: undefined symbol host_func"]


def cached_trixie_root():
    """A trixie root (glibc 2.41) another test built today, if there is one: this test never
    builds it (tests/foreign_roots.py does, slowly)."""
    from tests.slim_images import CACHE
    for d in sorted((CACHE / "foreign").glob("*-v*/trixie"), reverse=True):
        if (d / "usr/lib/x86_64-linux-gnu/libc.so.6").is_file():
            return d
    pytest.skip("no trixie root in the test cache (tests/integration/test_foreign_roots.py makes one)")


def test_a_library_from_a_newer_debian_is_caught(tmp_path):
    """A trixie library --include'd into an image of this machine's programs."""
    from closure.elf.reader import read_elf
    from closure.elf.symbols import read_symbols
    trixie = cached_trixie_root()
    host = tuple(int(x) for x in host_glibc().split("."))
    troot = Root(str(trixie))
    libdir = "/usr/lib/x86_64-linux-gnu"
    for name in sorted(os.listdir(trixie / libdir.lstrip("/"))):
        p = f"{libdir}/{name}"
        if ".so." not in name or (trixie / p.lstrip("/")).is_symlink():
            continue
        try:
            if read_elf(troot, p).needed != ("libc.so.6",):
                continue
            newer = sorted({n.name for n in read_symbols(troot, p).needs if n.name.startswith("GLIBC_2.")
                            and tuple(int(x) for x in n.name[6:].split(".")) > host})
        except Exception:
            continue
        if newer:
            break
    else:
        pytest.skip("no trixie library needing a glibc newer than this machine's")
    out = tmp_path / "img.tar"
    p = closure("build", "/usr/bin/true", "-o", out, "--no-recipes", "--include", f"{trixie}{p}:/opt/lib/{name}")
    want = {f"/opt/lib/{name}: {v} not found (needed from libc.so.6; the image has glibc {host_glibc()})"
            for v in newer}
    assert p.returncode == 0
    assert want <= {line.removeprefix("closure: warning: ") for line in p.stderr.splitlines()}, p.stderr
    c = closure("check", out)
    assert c.returncode == 1 and want <= set(c.stdout.splitlines())


def test_unreadable_elf_files_are_counted_and_kernel_dirs_skipped(tmp_path):
    root = tmp_path / "r"
    (root / "bin").mkdir(parents=True)
    (root / "proc").mkdir()
    (root / "bin" / "truncated").write_bytes(Path("/usr/bin/true").read_bytes()[:100])
    shutil.copy("/usr/bin/true", root / "proc" / "true")   # a live root's /proc is not looked into
    os.mkfifo(root / "bin" / "fifo")                        # never opened
    p = closure("check", root, "--json")
    doc = json.loads(p.stdout)
    assert p.returncode == 0 and doc["objects"] == 0 and doc["skipped"] == ["/bin/truncated"]

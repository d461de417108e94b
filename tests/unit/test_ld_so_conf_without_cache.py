"""A root with ld.so.conf but no ld.so.cache (debootstrap --foreign, an unpacked tree nobody
ran ldconfig in): closure resolves through ld.so.conf as the configured root would, labels
the pick, and warns that the image's ld.so will not search there — which the real ld.so, in
a chroot of that root, shows; once ldconfig wrote a cache, the pick is a cache entry."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from closure.collect import Options, collect
from closure.elf.ldso import Loader
from closure.root import Root
from tests.elf_fixtures import cc, lib, needs_gcc

pytestmark = [needs_gcc, pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")]


def make_root(root: Path) -> None:
    libdir = root / "lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    (root / "lib64").mkdir()
    shutil.copy(os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6"), libdir / "libc.so.6")
    shutil.copy(os.path.realpath("/lib64/ld-linux-x86-64.so.2"), root / "lib64/ld-linux-x86-64.so.2")
    lib(root / "opt/vendor/lib/libv.so", "v")
    cc(root / "bin/prog", "int v(void); int main(void) { return v() - 1; }\n", f"-L{root}/opt/vendor/lib", "-lv")
    (root / "etc").mkdir()
    (root / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    (root / "etc/ld.so.conf.d").mkdir()
    (root / "etc/ld.so.conf.d/vendor.conf").write_text("/opt/vendor/lib\n")


def real_list(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["chroot", str(root), "/lib64/ld-linux-x86-64.so.2", "--list", "/bin/prog"],
                          capture_output=True, text=True)


def test_ld_so_conf_pick_is_labelled_and_warned_about(tmp_path):
    root = tmp_path / "root"
    make_root(root)
    p = real_list(root)
    # ld.so itself never reads ld.so.conf: without a cache it does not find libv.so
    assert p.returncode != 0 and "libv.so: cannot open shared object file" in p.stderr, p.stdout + p.stderr
    edge = next(e for e in Loader(Root(str(root))).load("/bin/prog").edges if e.name == "libv.so")
    assert (edge.path, edge.rule) == ("/opt/vendor/lib/libv.so", "ld.so.conf")
    c = collect(["/bin/prog"], Options(root=Root(str(root)), recipes=False))
    assert "/opt/vendor/lib/libv.so" in c.entries and "/etc/ld.so.cache" not in c.entries
    assert [w for w in c.warnings if "ld.so.conf" in w] == [
        "/bin/prog: libv.so found in /opt/vendor/lib through ld.so.conf, but the root has no "
        "ld.so.cache: ld.so in the image will not look there (run ldconfig in the root)"]

    subprocess.run(["ldconfig", "-r", str(root)], check=True, capture_output=True)
    assert "libv.so => /opt/vendor/lib/libv.so" in real_list(root).stdout
    edge = next(e for e in Loader(Root(str(root))).load("/bin/prog").edges if e.name == "libv.so")
    assert (edge.path, edge.rule) == ("/opt/vendor/lib/libv.so", "ld.so.cache")
    c = collect(["/bin/prog"], Options(root=Root(str(root)), recipes=False))
    assert "/etc/ld.so.cache" in c.entries and not [w for w in c.warnings if "ld.so.conf" in w]

"""musl roots (Alpine-like): search via /etc/ld-musl-ARCH.path, rpath chain, builtin names."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from closure.collect import Options, collect
from closure.root import Root

MUSL_LD = "/lib/ld-musl-x86_64.so.1"
pytestmark = pytest.mark.skipif(
    shutil.which("musl-gcc") is None or not os.path.exists(MUSL_LD), reason="needs musl-tools")


def musl_cc(out: Path, src: str, *args: str, shared=False):
    out.parent.mkdir(parents=True, exist_ok=True)
    c = out.with_suffix(".c") if not shared else out.parent / (out.name + ".c")
    c.write_text(src)
    cmd = ["musl-gcc", "-o", str(out), str(c)] + (["-shared", "-fPIC"] if shared else []) + list(args)
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture
def alpine_like(tmp_path):
    root = tmp_path / "root"
    (root / "lib").mkdir(parents=True)
    shutil.copy(os.path.realpath(MUSL_LD), root / "lib" / "ld-musl-x86_64.so.1")
    (root / "lib" / "libc.musl-x86_64.so.1").symlink_to("ld-musl-x86_64.so.1")
    (root / "etc").mkdir()
    (root / "etc" / "ld-musl-x86_64.path").write_text("/opt/vendor/lib\n/lib\n/usr/lib\n")
    musl_cc(root / "opt/vendor/lib/libv.so", "int v(void){return 0;}", "-Wl,-soname,libv.so", shared=True)
    musl_cc(root / "usr/lib/libw.so", "int v(void); int w(void){return v();}", "-Wl,-soname,libw.so",
            f"-L{root}/opt/vendor/lib", "-lv", shared=True)
    musl_cc(root / "usr/bin/app", "int w(void); int main(void){return w();}",
            f"-L{root}/usr/lib", "-lw", f"-L{root}/opt/vendor/lib", "-lv", "-lm")
    return root


def test_musl_search_uses_the_path_file(alpine_like):
    c = collect(["/usr/bin/app"], Options(root=Root(str(alpine_like)), recipes=False))
    assert c.missing == []
    assert "/opt/vendor/lib/libv.so" in c.entries, "found through /etc/ld-musl-x86_64.path"
    assert "/usr/lib/libw.so" in c.entries
    assert c.entries["/lib/ld-musl-x86_64.so.1"].type == "file"
    assert "/etc/ld-musl-x86_64.path" in c.entries, "the image's loader needs its search path"
    # libm is part of musl's libc: never searched for, never missing
    assert not any("libm" in p for p in c.entries)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_musl_answer_matches_the_real_musl_loader(alpine_like):
    c = collect(["/usr/bin/app"], Options(root=Root(str(alpine_like)), recipes=False))
    p = subprocess.run(["bwrap", "--bind", str(alpine_like), "/", "--", "/lib/ld-musl-x86_64.so.1",
                        "--list", "/usr/bin/app"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    real = {line.split("=>")[1].split("(")[0].strip() for line in p.stdout.splitlines() if "=>" in line}
    ours = {Root(str(alpine_like)).resolve(p).path for p in real}
    assert ours <= set(c.entries)
    assert {"/opt/vendor/lib/libv.so", "/usr/lib/libw.so"} <= ours
    run = subprocess.run(["bwrap", "--bind", str(alpine_like), "/", "--", "/usr/bin/app"])
    assert run.returncode == 0


def test_alpine_release_is_carried_for_scanners(alpine_like):
    """The os-release recipe takes an Alpine root's /etc/alpine-release and os-release
    (scanners pick the OS feed from them); a root without them gets neither."""
    c = collect(["/usr/bin/app"], Options(root=Root(str(alpine_like))))
    assert "/etc/alpine-release" not in c.entries and "/etc/os-release" not in c.entries
    (alpine_like / "etc/alpine-release").write_text("3.19.1\n")
    (alpine_like / "etc/os-release").write_text('NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n')
    c = collect(["/usr/bin/app"], Options(root=Root(str(alpine_like))))
    assert c.entries["/etc/alpine-release"].reasons[0].recipe == "os-release"
    assert c.entries["/etc/os-release"].type == "file"

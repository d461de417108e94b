"""No code from an image runs unsandboxed: an image whose program's ELF interpreter is a
planted "ld.so" that writes marker files where the host would see them. slim (and its
probe), verify's fallback and a build --root probe all run it only inside the sandbox: the
markers never appear on the host."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.slim_images import tar_of_dir, write_oci

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("gcc") is None or os.uname().machine != "x86_64"
                                or shutil.which("strace") is None, reason="needs root, gcc, strace, x86-64")
CLOSURE = [os.path.join(os.path.dirname(sys.executable), "closure")]
LD = "/lib64/ld-linux-x86-64.so.2"

# A loader of its own: no libc, raw syscalls, position independent (the kernel maps an
# interpreter anywhere), one open+write per marker, exit 0.
PAYLOAD_C = r"""
static long sys(long n, long a, long b, long c) {
    long r;
    __asm__ volatile ("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
static void mark(const char *path) {
    long fd = sys(2, (long)path, 01 | 0100, 0644);         /* open(O_WRONLY|O_CREAT) */
    if (fd >= 0) { sys(1, fd, (long)"pwned\n", 6); sys(3, fd, 0, 0); }
}
void _start(void) {
    MARKS
    sys(60, 0, 0, 0);                                        /* exit(0) */
}
"""


@pytest.fixture()
def planted(tmp_path):
    """(image archive, unpacked tree, host marker paths)."""
    if not os.path.exists(LD):
        pytest.skip(f"needs {LD}")
    tag = uuid.uuid4().hex
    markers = [f"/tmp/closure-marker-{tag}", f"/root/closure-marker-{tag}", f"/var/tmp/closure-marker-{tag}"]
    tree = tmp_path / "tree"
    for d in ("bin", "lib64", "lib/x86_64-linux-gnu", "etc", "tmp", "root", "var/tmp"):
        (tree / d).mkdir(parents=True)
    src = tmp_path / "payload.c"
    src.write_text(PAYLOAD_C.replace("MARKS", " ".join(f'mark("{m}");' for m in markers)))
    subprocess.run(["gcc", "-nostdlib", "-static-pie", "-fPIE", "-O1", "-o", str(tree / LD.lstrip("/")),
                    str(src)], check=True)
    main = tmp_path / "app.c"
    main.write_text("int main(void){return 0;}\n")
    subprocess.run(["gcc", "-O1", f"-Wl,--dynamic-linker={LD}", "-o", str(tree / "bin/app"), str(main)], check=True)
    libc = os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")
    shutil.copy(libc, tree / "lib/x86_64-linux-gnu/libc.so.6")
    layer = tmp_path / "layer.tar"
    tar_of_dir(tree, layer)
    image = write_oci(tmp_path / "planted.tar", [layer], ref="planted:1", entrypoint=["/bin/app"])
    yield image, tree, markers
    for m in markers:
        if os.path.exists(m):
            os.unlink(m)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(CLOSURE + list(args), capture_output=True, text=True, timeout=300)


def test_the_planted_loader_really_runs_the_payload(planted, tmp_path):
    """The fixture is armed: run in a chroot (a throwaway copy), the payload writes."""
    _image, tree, markers = planted
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy, symlinks=True)
    r = subprocess.run(["chroot", str(copy), "/bin/app"], capture_output=True)
    assert r.returncode == 0
    assert (copy / markers[0].lstrip("/")).read_text() == "pwned\n"


def test_slim_and_its_probe_run_image_code_only_in_the_sandbox(planted, tmp_path):
    image, _tree, markers = planted
    out = tmp_path / "slim.tar"
    r = run("slim", str(image), "-o", str(out), "--probe", "/bin/app")
    assert r.returncode == 0, r.stderr
    assert [m for m in markers if os.path.exists(m)] == []
    v = run("verify", str(out), "--runtime", "bwrap", "--", "/bin/app")
    assert v.returncode == 0, v.stderr
    assert [m for m in markers if os.path.exists(m)] == []


def test_a_build_probe_in_another_root_runs_there(planted, tmp_path):
    _image, tree, markers = planted
    r = run("build", "--root", str(tree), "/bin/app", "--probe", "/bin/app", "-o", str(tmp_path / "o.tar"))
    assert r.returncode == 0, r.stderr
    assert [m for m in markers if os.path.exists(m)] == []
    assert not (tree / markers[0].lstrip("/")).exists()         # nor into the root itself

"""Debian roots of another architecture and of a newer release, made with `debootstrap
--foreign` (download and unpack only: nothing of the root is run on the host, as it could
not be for arm64), then the .debs it left to its second stage unpacked for a complete tree.
Built at most once a day on a machine, under ~/.cache/closure-tests/foreign, shared by the
tests; a machine without debootstrap, root, or a mirror serving the suite skips them."""
from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.slim_images import CACHE, _locked, debian_mirror

FOREIGN_VERSION = 4     # bump when what build_root makes changes
FOREIGN_CACHE = CACHE / "foreign"
DAY = datetime.date.today()          # once per session: a run across midnight keeps its roots
DAY_DIR = FOREIGN_CACHE / f"{DAY.isoformat()}-v{FOREIGN_VERSION}"
QEMU_AARCH64 = "qemu-aarch64-static"
ROOTS = {
    # name: (suite, arch, extra packages)
    "arm64": ("bookworm", "arm64", "curl,ca-certificates"),
    "trixie": ("trixie", "amd64", ""),
}


def _unpack_debs(root: Path) -> int:
    """The .debs debootstrap downloaded but left to its second stage (the `base` list:
    --include'd packages; the `required` ones the first stage already unpacked), unpacked
    over the root keeping the merged /usr's directory links, as dpkg does."""
    paths = dict(line.split(" ", 1) for line in (root / "debootstrap/debpaths").read_text().splitlines() if " " in line)
    base = (root / "debootstrap/base").read_text().split() if (root / "debootstrap/base").is_file() else []
    for name in base:
        deb = root / paths[name].lstrip("/")
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "--keep-directory-symlink", "-C", str(root)], input=data,
                       capture_output=True, check=True)
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    return len(base)


def _ca_bundle(root: Path) -> None:
    """What ca-certificates' postinst (update-ca-certificates) would write, which a foreign
    root never ran: every certificate it ships selected (the default), concatenated."""
    certs = sorted((root / "usr/share/ca-certificates").rglob("*.crt"))
    if certs:
        with open(root / "etc/ssl/certs/ca-certificates.crt", "wb") as out:
            for cert in certs:
                out.write(cert.read_bytes())


def build_root(dest: Path, suite: str, arch: str, include: str) -> None:
    work = dest.with_name(dest.name + ".work")
    shutil.rmtree(work, ignore_errors=True)
    cmd = ["debootstrap", "--foreign", f"--arch={arch}", "--variant=minbase"]
    cmd += [f"--include={include}"] if include else []
    p = subprocess.run(cmd + [suite, str(work), debian_mirror()], capture_output=True, text=True)
    if p.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        pytest.skip(f"debootstrap --foreign {suite}/{arch} failed (mirror unreachable, or no "
                    f"{suite} there?): {((p.stdout + p.stderr).strip().splitlines() or [''])[-1]}")
    _unpack_debs(work)
    _ca_bundle(work)
    if arch == "amd64":   # runs here: let the root's own ldconfig write its ld.so.cache
        subprocess.run(["chroot", str(work), "/sbin/ldconfig"], capture_output=True, check=True)
    work.rename(dest)


def _cached_root(name: str) -> Path:
    """The named root from this session's day in the cache, built now if it is not there."""
    dest = DAY_DIR / name
    with _locked(FOREIGN_CACHE / f"{name}.lock"):
        if not dest.is_dir():
            DAY_DIR.mkdir(parents=True, exist_ok=True)
            build_root(dest, *ROOTS[name])
        # Earlier days' roots; yesterday's is left to a session that began before midnight.
        keep = {f"{d.isoformat()}-v{FOREIGN_VERSION}" for d in (DAY, DAY - datetime.timedelta(days=1))}
        for old in FOREIGN_CACHE.iterdir():
            if old.is_dir() and old.name not in keep and re.fullmatch(r"\d{4}-\d\d-\d\d-v\d+", old.name):
                shutil.rmtree(old, ignore_errors=True)
    return dest


def foreign_root(name: str) -> Path:
    """The named root (see ROOTS), from today's cache or built now."""
    for tool in ("debootstrap", "dpkg-deb", "tar", "chroot"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    if os.geteuid() != 0:
        pytest.skip("debootstrap needs root")
    return _cached_root(name)


@pytest.fixture(scope="session")
def arm64_root() -> Path:
    """debootstrap --foreign --arch=arm64 --variant=minbase bookworm, with curl."""
    return foreign_root("arm64")


@pytest.fixture(scope="session")
def trixie_root() -> Path:
    """debootstrap --foreign --variant=minbase trixie (amd64, glibc 2.41), its ld.so.cache
    written by its own ldconfig."""
    return foreign_root("trixie")


def qemu_aarch64() -> str:
    path = shutil.which(QEMU_AARCH64)
    if path is None:
        pytest.skip(f"needs {QEMU_AARCH64} (apt-get install qemu-user-static)")
    return path

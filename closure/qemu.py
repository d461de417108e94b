"""Running an image of another architecture: which qemu-user emulator runs it, and whether
the kernel already runs such binaries itself (a binfmt_misc handler), which is what lets
podman start a foreign image unchanged.

Only the static emulators (`qemu-aarch64-static`, Debian package qemu-user-static) are
used: the emulator is bound into the image's root, where the host's libraries are not.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from .errors import NoRuntime

BINFMT_DIR = "/proc/sys/fs/binfmt_misc"
# OCI architecture -> (ELF class, little endian, e_machine, qemu's name for it)
ARCHES = {
    "amd64": (2, True, 62, "x86_64"), "386": (1, True, 3, "i386"),
    "arm64": (2, True, 183, "aarch64"), "arm": (1, True, 40, "arm"),
    "ppc64le": (2, True, 21, "ppc64le"), "s390x": (2, False, 22, "s390x"),
    "riscv64": (2, True, 243, "riscv64"),
}


@dataclass(frozen=True)
class Foreign:
    """An image whose architecture is not the host's."""

    arch: str            # the image's, e.g. arm64
    host: str            # this machine's, e.g. amd64

    @property
    def qemu_name(self) -> str:
        return f"qemu-{ARCHES[self.arch][3]}-static"

    def emulator(self) -> str:
        """The host path of the static qemu-user binary, or NoRuntime saying what to install."""
        if self.arch not in ARCHES:
            raise NoRuntime(f"the image is linux/{self.arch} and this machine linux/{self.host}: "
                            f"closure knows no emulator for {self.arch}")
        path = shutil.which(self.qemu_name)
        if path is None:
            raise NoRuntime(f"the image is linux/{self.arch} and this machine linux/{self.host}: "
                            f"running it needs {self.qemu_name} (Debian package qemu-user-static)")
        return path


def _elf_header(elfclass: int, little: bool, machine: int, etype: int) -> bytes:
    """The first 20 bytes of an executable of that machine (what binfmt_misc matches)."""
    order = "little" if little else "big"
    return (b"\x7fELF" + bytes([elfclass, 1 if little else 2, 1]) + bytes(9)
            + etype.to_bytes(2, order) + machine.to_bytes(2, order))


def _parse_handler(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        fields[key.rstrip(":")] = value.strip() if value else key
    return fields


def binfmt_handler(arch: str, binfmt_dir: str = BINFMT_DIR) -> str | None:
    """The name of an enabled binfmt_misc handler that runs executables of `arch` and was
    registered with the F (fix-binary) flag, so the kernel opened its interpreter at
    registration and it works inside a container's own root too. None when there is none."""
    if arch not in ARCHES:
        return None
    elfclass, little, machine, _ = ARCHES[arch]
    try:
        with open(os.path.join(binfmt_dir, "status")) as f:
            if f.read().strip() != "enabled":
                return None
        names = sorted(os.listdir(binfmt_dir))
    except OSError:
        return None    # not mounted: the kernel runs no foreign binaries
    headers = [_elf_header(elfclass, little, machine, t) for t in (2, 3)]
    for name in names:
        if name in ("status", "register"):
            continue
        try:
            with open(os.path.join(binfmt_dir, name)) as f:
                fields = _parse_handler(f.read())
        except OSError:
            continue
        if "enabled" not in fields or "F" not in fields.get("flags", "") or "magic" not in fields:
            continue
        try:
            offset = int(fields.get("offset", "0"))
            magic = bytes.fromhex(fields["magic"])
            mask = bytes.fromhex(fields["mask"]) if "mask" in fields else b"\xff" * len(magic)
        except ValueError:
            continue
        for header in headers:
            window = header[offset:offset + len(magic)]
            if len(window) == len(magic) and all(
                    (h & m) == (g & m) for h, g, m in zip(window, magic, mask)):
                return name
    return None

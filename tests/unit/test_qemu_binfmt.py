"""Whether the kernel runs a foreign architecture's executables itself: binfmt_misc entries
in the kernel's own status format (fs/binfmt_misc.c), made from the registrations
qemu-user-static ships when it is installed (its /usr/lib/binfmt.d lines), else from the
one Debian 12's package writes for aarch64."""
from __future__ import annotations

from pathlib import Path

import pytest

from closure.qemu import ARCHES, Foreign, binfmt_handler
from closure.errors import NoRuntime

DEBIAN_AARCH64 = (r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00"
                  r"\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff"
                  r"\xff\xff\xfe\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF")


def registration(name: str) -> str:
    conf = Path(f"/usr/lib/binfmt.d/{name}.conf")
    if conf.is_file():
        return conf.read_text().strip()
    if name != "qemu-aarch64":
        pytest.skip(f"needs qemu-user-static's {conf}")
    return DEBIAN_AARCH64


def kernel_status(reg: str, *, enabled: bool = True, flags: str | None = None) -> str:
    """What /proc/sys/fs/binfmt_misc/NAME reads for a `:name:M:offset:magic:mask:interp:flags`
    registration."""
    _, name, kind, offset, magic, mask, interp, reg_flags = reg.split(":")
    assert kind == "M"
    unescape = lambda s: s.encode().decode("unicode_escape").encode("latin-1")  # noqa: E731
    return (f"{'enabled' if enabled else 'disabled'}\ninterpreter {interp}\n"
            f"flags: {reg_flags if flags is None else flags}\noffset {offset or 0}\n"
            f"magic {unescape(magic).hex()}\nmask {unescape(mask).hex()}\n")


def binfmt_dir(tmp_path: Path, entries: dict[str, str], status: str = "enabled") -> str:
    d = tmp_path / "binfmt_misc"
    d.mkdir(parents=True)
    (d / "status").write_text(status + "\n")
    (d / "register").write_text("")
    for name, text in entries.items():
        (d / name).write_text(text)
    return str(d)


def test_a_fix_binary_handler_for_the_machine_is_found(tmp_path):
    d = binfmt_dir(tmp_path, {"qemu-aarch64": kernel_status(registration("qemu-aarch64"))})
    assert binfmt_handler("arm64", d) == "qemu-aarch64"
    assert binfmt_handler("arm", d) is None, "another machine's executables do not match"
    assert binfmt_handler("s390x", d) is None


def test_a_handler_without_F_or_disabled_does_not_count(tmp_path):
    reg = registration("qemu-aarch64")
    # Without F the kernel opens the interpreter by path when a program starts: inside a
    # container's root that path does not exist.
    assert binfmt_handler("arm64", binfmt_dir(tmp_path / "a", {"q": kernel_status(reg, flags="OC")})) is None
    assert binfmt_handler("arm64", binfmt_dir(tmp_path / "b", {"q": kernel_status(reg, enabled=False)})) is None
    assert binfmt_handler("arm64", binfmt_dir(tmp_path / "c", {"q": kernel_status(reg)}, "disabled")) is None


def test_no_binfmt_misc_mounted_means_no_handler(tmp_path):
    assert binfmt_handler("arm64", str(tmp_path / "absent")) is None
    d = binfmt_dir(tmp_path, {"jar": "enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n",
                              "junk": "enabled\nflags: F\nmagic zz\n"})
    assert binfmt_handler("arm64", d) is None, "an extension entry and a malformed one match nothing"


def test_the_emulator_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(NoRuntime, match=r"^the image is linux/arm64 and this machine linux/amd64: running "
                                        r"it needs qemu-aarch64-static \(Debian package qemu-user-static\)$"):
        Foreign("arm64", "amd64").emulator()
    with pytest.raises(NoRuntime, match="no emulator for mips64"):
        Foreign("mips64", "amd64").emulator()
    assert {f"qemu-{v[3]}-static" for v in ARCHES.values()} >= {"qemu-aarch64-static", "qemu-x86_64-static"}

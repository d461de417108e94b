"""The OCI image config: what to run, its environment, the platform, the layer diff_ids.

The platform is read from the target's own ELF header (e_machine), never from the host,
so an image built from a foreign root says what it really holds.
"""
from __future__ import annotations

import os
import stat
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import BadInput, ClosureError, NotElf
from ..model import DEFAULT_PATH, Closure
from ..root import Root


EM_386, EM_MIPS, EM_PPC, EM_PPC64, EM_S390, EM_ARM = 3, 8, 20, 21, 22, 40
EM_X86_64, EM_AARCH64, EM_RISCV, EM_LOONGARCH = 62, 183, 243, 258

# GOARCH names, as OCI uses them; the value may depend on class and byte order.
_ARCH = {
    EM_386: lambda is64, le: "386",
    EM_X86_64: lambda is64, le: "amd64",
    EM_ARM: lambda is64, le: "arm",
    EM_AARCH64: lambda is64, le: "arm64",
    EM_MIPS: lambda is64, le: ("mips64" if is64 else "mips") + ("le" if le else ""),
    EM_PPC: lambda is64, le: "ppc",
    EM_PPC64: lambda is64, le: "ppc64le" if le else "ppc64",
    EM_S390: lambda is64, le: "s390x" if is64 else "s390",
    EM_RISCV: lambda is64, le: "riscv64" if is64 else "riscv32",
    EM_LOONGARCH: lambda is64, le: "loong64",
}
_VARIANT = {"arm64": "v8"}
_UNAME_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386",
               "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


@dataclass(frozen=True)
class Platform:
    architecture: str
    os: str = "linux"
    variant: str | None = None

    def to_json(self) -> dict:
        d = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            d["variant"] = self.variant
        return d


def elf_platform(header: bytes) -> Platform:
    """Platform from the first 20 bytes of an ELF file (e_ident, e_type, e_machine)."""
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise NotElf("not an ELF file")
    ei_class, ei_data = header[4], header[5]
    if ei_class not in (1, 2) or ei_data not in (1, 2):
        raise NotElf(f"bad ELF class/data bytes {ei_class}/{ei_data}")
    little = ei_data == 1
    (machine,) = struct.unpack_from("<H" if little else ">H", header, 18)
    arch = _ARCH.get(machine)
    if arch is None:
        raise NotElf(f"unsupported ELF machine {machine}")
    name = arch(ei_class == 2, little)
    return Platform(name, "linux", _VARIANT.get(name))


def closure_platform(closure: Closure, root: Root) -> Platform:
    """The first target that is ELF decides; then any ELF file in the closure (a script
    target's interpreter); an image with no ELF at all takes the host's platform."""
    candidates = list(closure.targets) + [
        e.source for e in closure.sorted_entries() if e.type == "file" and e.source]
    for path in candidates:
        try:
            resolved = root.resolve(path).path
            st = root.lstat(resolved)
            if st is None or not stat.S_ISREG(st.st_mode):
                continue
            with root.open(resolved) as f:
                return elf_platform(f.read(20))
        except (ClosureError, OSError):
            continue
    return host_platform()


def host_platform() -> Platform:
    machine = os.uname().machine
    arch = _UNAME_ARCH.get(machine, machine)
    return Platform(arch, "linux", _VARIANT.get(arch))


def image_env(closure_env: Mapping[str, str], extra: Sequence[str],
              base: Sequence[str] | None = None) -> list[str]:
    """Without a base: PATH default, then the recipes' env (sorted). With one (a source
    image's Env): its items as they are, then the recipes' variables it does not set
    (sorted). Then the user's K=V in given order: a later value for the same key wins but
    keeps the key's first position."""
    if base is None:
        defaults = {"PATH": DEFAULT_PATH, **dict(sorted(closure_env.items()))}
        items = [f"{k}={v}" for k, v in defaults.items()]
    else:
        items = [e for e in base if isinstance(e, str)] if isinstance(base, list) else []
        have = {e.split("=", 1)[0] for e in items}
        items += [f"{k}={v}" for k, v in sorted(closure_env.items()) if k not in have]
    for item in extra:
        key, eq, _value = item.partition("=")
        if not key or not eq:
            raise BadInput(f"--env wants KEY=VALUE, got {item!r}")
        at = next((i for i, e in enumerate(items) if e.split("=", 1)[0] == key), None)
        if at is None:
            items.append(item)
        else:
            items[at] = item
    return items


# The runtime fields closure reads or carries over, and what each must be.
_FIELD_TYPES = {"Entrypoint": "a list of strings", "Cmd": "a list of strings",
                "Env": "a list of KEY=VALUE strings", "User": "a string", "WorkingDir": "a string",
                "StopSignal": "a string", "Labels": "an object of strings",
                "ExposedPorts": "an object", "Volumes": "an object"}


def _field_ok(key: str, value) -> bool:
    if key in ("Entrypoint", "Cmd", "Env"):
        return isinstance(value, list) and all(
            isinstance(v, str) and (key != "Env" or "=" in v) for v in value)
    if key == "Labels":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return isinstance(value, dict if key in ("ExposedPorts", "Volumes") else str)


def check_run_config(config, what: str) -> dict:
    """An image's runtime config (the "config" object) whose fields have the types the
    image spec gives them (null counts as absent): else BadInput naming the field."""
    if not isinstance(config, dict):
        raise BadInput(f"{what}: the image config's 'config' is not an object")
    for key, want in _FIELD_TYPES.items():
        if config.get(key) is not None and not _field_ok(key, config[key]):
            raise BadInput(f"{what}: the image config's {key} is not {want}: {config[key]!r:.80}")
    return config


def run_config(*, base: Mapping | None, closure_env: Mapping[str, str], env: Sequence[str],
               entrypoint: Sequence[str] | None, cmd: Sequence[str] | None, user: str | None,
               workdir: str | None, labels: Mapping[str, str]) -> dict:
    """The config's "config" object: `base` (or nothing) with the given fields over it. A
    field given as None keeps the base's value; an empty one removes it; labels merge."""
    config = dict(base or {})
    config["Env"] = image_env(closure_env, env, None if base is None else config.get("Env") or [])
    for key, value in (("Entrypoint", entrypoint), ("Cmd", cmd)):
        if value is not None:
            config[key] = list(value)
    for key, value in (("User", user), ("WorkingDir", workdir)):
        if value is not None:
            config[key] = value
    base_labels = config.get("Labels")
    config["Labels"] = dict(sorted({**(base_labels if isinstance(base_labels, dict) else {}),
                                    **labels}.items()))
    return {k: v for k, v in config.items() if v not in (None, [], {}, "")}


def image_config(*, platform: Platform, created: str, diff_ids: Sequence[str], config: Mapping,
                 created_by: str, comment: str | Sequence[str]) -> dict:
    return {
        **platform.to_json(),
        "created": created,
        "config": dict(config),
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        # One history entry per layer (a list of comments: one per layer, in order).
        "history": [{"created": created, "created_by": created_by, "comment": c}
                    for c in ([comment] if isinstance(comment, str) else comment)],
    }

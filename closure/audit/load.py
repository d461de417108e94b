"""Turn a command-line argument into an Inventory: an image (OCI layout or archive,
docker-archive), a rootfs directory, an `analyze --json` file, or target programs to
analyse in a root (with the package records a build adds)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import BadInput
from .inventory import Inventory, from_analysis, from_closure, from_image, from_rootfs, kind_of

KINDS = ("image", "rootfs", "analysis", "target")
# How messages name each kind: as a thing given, and as a thing missing.
_GIVEN = {"image": "an image", "rootfs": "a rootfs directory", "analysis": "an analysis JSON file",
          "target": "a program"}
_NOUN = {"image": "image", "rootfs": "directory", "analysis": "analysis file", "target": "program"}


@dataclass(frozen=True)
class TargetOptions:
    """How to analyse TARGETs when the argument is not an image."""

    root: str = "/"
    library_path: tuple[str, ...] = ()
    dlopen_scan: bool = True
    recipes: bool = True
    recipe_dirs: tuple[str, ...] = ()
    package_records: bool = True          # as `closure build` adds them


def _either(words: list[str], last: str = "or") -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def check(args: list[str], allow: tuple[str, ...] = KINDS) -> str:
    """Which kind of input args are (one image, rootfs or analysis, or target programs);
    BadInput, before any work, when it is not one the command accepts."""
    if not args:
        raise BadInput(f"give {_either([_GIVEN[k] for k in allow])}")
    kinds = [kind_of(a) for a in args]
    if len(args) == 1 and kinds[0] != "target":
        if kinds[0] not in allow:
            raise BadInput(f"{args[0]}: {_GIVEN[kinds[0]]} is not accepted here "
                           f"(give {_either([_GIVEN[k] for k in allow])})")
        return kinds[0]
    for a in args:
        # A bare name may be a program on the root's PATH; anything else must exist here.
        if ("/" in a or "target" not in allow) and not os.path.lexists(a):
            raise BadInput(f"{a}: no such {_either([_NOUN[k] for k in allow])}")
    bad = [a for a, k in zip(args, kinds) if k != "target"]
    if bad:
        raise BadInput(f"{bad[0]}: give one image, or target programs, not both")
    if "target" not in allow:
        raise BadInput(f"{args[0]}: not an image (no index.json, manifest.json or tar) and not a directory")
    return "target"


def load(args: list[str], *, ref: str | None = None, hashes: bool = True,
         targets: TargetOptions = TargetOptions(), allow: tuple[str, ...] = KINDS,
         registry=None) -> Inventory:
    from ..registry.transport import RegistryOptions, parse, reading
    if len(args) == 1 and "image" in allow and parse(args[0]).kind != "path":
        # oci:, docker://, containers-storage:...: fetched to a local path for the read.
        with reading(args[0], ref, registry or RegistryOptions()) as (path, chosen):
            return from_image(path, chosen)
    kind = check(args, allow)
    if kind == "image":
        return from_image(args[0], ref)
    if kind == "rootfs":
        return from_rootfs(args[0], hashes=hashes)
    if kind == "analysis":
        return from_analysis(args[0])
    return analyse(args, targets, hashes=hashes)


def analyse(programs: list[str], t: TargetOptions, *, hashes: bool = True) -> Inventory:
    from ..collect import Options, collect
    from ..root import Root
    root = Root(t.root)
    closure = collect(list(programs), Options(root=root, library_path=t.library_path,
                                              dlopen_scan=t.dlopen_scan, recipes=t.recipes,
                                              recipe_dirs=t.recipe_dirs,
                                              package_records=t.package_records))
    name = " ".join(os.path.basename(p) for p in closure.targets)
    return from_closure(closure, root, hashes=hashes, name=name)

"""Turn a command-line argument into an Inventory: an image (OCI layout or archive,
docker-archive), a rootfs directory, an `analyze --json` file, or target programs to
analyse in a root (with the package records a build adds)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import BadInput
from .inventory import Inventory, from_analysis, from_closure, from_image, from_rootfs, kind_of


@dataclass(frozen=True)
class TargetOptions:
    """How to analyse TARGETs when the argument is not an image."""

    root: str = "/"
    library_path: tuple[str, ...] = ()
    dlopen_scan: bool = True
    recipes: bool = True
    recipe_dirs: tuple[str, ...] = ()
    package_records: bool = True          # as `closure build` adds them
    warnings: list = field(default_factory=list, compare=False)


def load(args: list[str], *, ref: str | None = None, hashes: bool = True,
         targets: TargetOptions = TargetOptions(), allow: tuple[str, ...] = ("image", "rootfs", "analysis", "target")) -> Inventory:
    if not args:
        raise BadInput("give an image, a rootfs directory or target programs")
    kinds = [kind_of(a) for a in args]
    if len(args) == 1 and kinds[0] != "target":
        kind = kinds[0]
        if kind not in allow:
            raise BadInput(f"{args[0]}: a {kind} is not accepted here (give: {', '.join(allow)})")
        if kind == "image":
            return from_image(args[0], ref)
        if kind == "rootfs":
            return from_rootfs(args[0], hashes=hashes)
        return from_analysis(args[0])
    for a in args:
        if "/" in a and not os.path.lexists(a):
            raise BadInput(f"{a}: no such image, directory or program")
    bad = [a for a, k in zip(args, kinds) if k != "target"]
    if bad:
        raise BadInput(f"{bad[0]}: give one image, or target programs, not both")
    if "target" not in allow:
        raise BadInput(f"{args[0]}: not an image (no index.json, manifest.json or tar) and not a directory")
    return analyse(args, targets, hashes=hashes)


def analyse(programs: list[str], t: TargetOptions, *, hashes: bool = True) -> Inventory:
    from ..collect import Options, collect
    from ..root import Root
    root = Root(t.root)
    closure = collect(list(programs), Options(root=root, library_path=t.library_path,
                                              dlopen_scan=t.dlopen_scan, recipes=t.recipes,
                                              recipe_dirs=t.recipe_dirs,
                                              package_records=t.package_records))
    t.warnings.extend(closure.warnings)
    name = " ".join(os.path.basename(p) for p in closure.targets)
    return from_closure(closure, root, hashes=hashes, name=name)

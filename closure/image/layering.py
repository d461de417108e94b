"""Layer strategies: a Closure's one LayerPlan split into several, so images built from the
same root share layers in registries and on nodes (apko's grouping by package origin).

`one` keeps today's single layer. `auto` (a budget of 10) and `N` (a budget of N layers)
group the files by the source package that owns them (dpkg or apk: libc6 and libc-bin are
both `glibc`); the biggest groups get a layer each, within the budget, and everything
else (files no package owns, small groups, every generated file: passwd, nsswitch.conf, the
merged CA bundle) goes into the top layer. A package layer holds its files, the package's
own record under /var/lib/dpkg/status.d, and the parent directories they need with fixed
modes, and nothing that depends on the rest of the image: the glibc layer built for curl
and for git is the same blob when the files are the same.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, replace

from ..errors import BadInput
from ..model import Closure
from ..root import Root
from .tarlayer import PARENT_MODE, LayerItem, LayerPlan

AUTO_BUDGET = 10
MAX_LAYERS = 16            # a few runtimes and registries start to struggle past this
MIN_GROUP_BYTES = 256 << 10  # a smaller group costs more in requests than it saves
STATUS_D = "/var/lib/dpkg/status.d"
TOP = "top"


@dataclass(frozen=True)
class PlannedLayer:
    name: str              # the package origin ("glibc"), or "top" / "all"
    plan: LayerPlan

    @property
    def comment(self) -> str:
        what = f"files of the {self.name} packages" if self.name not in (TOP, "all") else (
            "the rest: generated files and files no big package owns" if self.name == TOP else "every file")
        return f"{what}: {self.plan.file_count} files, {self.plan.content_bytes} bytes"


def parse_strategy(value: str | int | None) -> int:
    """'one' -> 1, 'auto' -> AUTO_BUDGET, 'N' -> N (1..MAX_LAYERS): the layer budget."""
    if value is None or value == "one":
        return 1
    if value == "auto":
        return AUTO_BUDGET
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise BadInput(f"--layers {value!r}: give auto, one, or a number of layers (1-{MAX_LAYERS})") from None
    if not 1 <= n <= MAX_LAYERS:
        raise BadInput(f"--layers {n}: give 1 to {MAX_LAYERS} layers")
    return n


def origins(closure: Closure, root: Root) -> dict[str, str]:
    """image path -> package origin (source package name) for what packages own."""
    from ..audit.packages import PackageDB
    from ..audit.records import owned_packages
    from ..audit.tree import RootTree
    db = PackageDB(RootTree(root))
    if not db.packages:
        return {}
    out: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for key, paths in sorted(owned_packages(closure, db).items()):
        pkg = db.packages[key]
        origin = pkg.source or pkg.name
        by_name.setdefault(pkg.name, origin)
        by_name.setdefault(f"{pkg.name}_{pkg.architecture}", origin)
        for p in paths:
            out.setdefault(p, origin)     # shared paths: the first origin by key order
    for path in closure.entries:          # a package's own record travels with its files
        if posixpath.dirname(path) == STATUS_D:
            name = posixpath.basename(path).removesuffix(".md5sums")
            if name in by_name:
                out[path] = by_name[name]
    return out


def family_groups(images) -> dict[str, frozenset[str]]:
    """For images built together ((Closure, Root) pairs): origin -> the paths of it that
    every image holding that origin has. Their package layers hold just those, so the
    family shares them; what only some images have of an origin goes to their top layers."""
    seen: dict[str, list[set]] = {}
    for closure, root in images:
        mine: dict[str, set] = {}
        for path, origin in origins(closure, root).items():
            # A generated file (a package's md5sums record) is shared only if its bytes are.
            mine.setdefault(origin, set()).add((path, closure.entries[path].content))
        for origin, paths in mine.items():
            seen.setdefault(origin, []).append(paths)
    return {o: frozenset(p for p, _ in set.intersection(*sets))
            for o, sets in sorted(seen.items()) if len(sets) > 1}


def split(full: LayerPlan, owner: dict[str, str], budget: int,
          groups: dict[str, frozenset[str]] | None = None) -> tuple[PlannedLayer, ...]:
    """Split the plan: the budget-1 biggest origins (of at least MIN_GROUP_BYTES) get a
    layer each, sorted by name; the rest is the top layer, last. `groups` (a family's)
    restricts an origin's layer to the paths listed for it."""
    if budget <= 1:
        return (PlannedLayer("all", full),)
    if groups:
        owner = {p: o for p, o in owner.items() if o not in groups or p in groups[o]}
    sizes: dict[str, int] = {}
    for item in full.items:
        if item.kind == "file" and item.path in owner and item.content is None:
            sizes[owner[item.path]] = sizes.get(owner[item.path], 0) + item.size
    ranked = sorted((o for o, s in sizes.items() if s >= MIN_GROUP_BYTES), key=lambda o: (-sizes[o], o))
    chosen = set(ranked[:budget - 1])
    if not chosen:
        return (PlannedLayer("all", full),)

    group_of: dict[str, str] = {}
    for item in full.items:
        if item.kind == "dir":
            continue
        if item.kind == "hardlink":       # a hard link lives with the file it points to
            group = group_of.get(item.link, TOP)
        else:
            group = owner.get(item.path, TOP)
            group = group if group in chosen else TOP
        group_of[item.path] = group
    members: dict[str, list[LayerItem]] = {g: [] for g in chosen | {TOP}}
    needed_dirs: dict[str, set[str]] = {g: set() for g in chosen}
    for item in full.items:
        if item.kind == "dir":
            members[TOP].append(item)
            continue
        group = group_of[item.path]
        members[group].append(item)
        if group != TOP:
            parent = posixpath.dirname(item.path)
            while parent != "/" and parent not in needed_dirs[group]:
                needed_dirs[group].add(parent)
                parent = posixpath.dirname(parent)
    order = {item.path: i for i, item in enumerate(full.items)}
    layers = []
    for group in sorted(chosen):
        dirs = [LayerItem(d, "dir", PARENT_MODE) for d in needed_dirs[group]]
        items = sorted(dirs + [replace(i) for i in members[group]], key=lambda i: order[i.path])
        layers.append(PlannedLayer(group, LayerPlan(tuple(items))))
    layers.append(PlannedLayer(TOP, LayerPlan(tuple(members[TOP]))))
    return tuple(layers)


def plan_layers(closure: Closure, root: Root, full: LayerPlan, strategy: str | int | None,
                groups: dict[str, frozenset[str]] | None = None) -> tuple[PlannedLayer, ...]:
    budget = parse_strategy(strategy)
    if budget <= 1:
        return (PlannedLayer("all", full),)
    return split(full, origins(closure, root), budget, groups)

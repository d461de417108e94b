"""What changed between two images (or two analyses): files added, removed and changed,
with sizes and the reasons they are in, and packages added, removed or upgraded."""
from __future__ import annotations

from dataclasses import dataclass

from ..report import describe, human_size
from .bypackage import group
from .inventory import Inventory, Item


@dataclass(frozen=True)
class Change:
    path: str
    a: Item
    b: Item
    what: tuple[str, ...]        # type, target, mode, size, content


@dataclass(frozen=True)
class PackageChange:
    name: str
    architecture: str
    a: str | None                # version in A (None: added)
    b: str | None                # version in B (None: removed)


@dataclass
class Diff:
    a: Inventory
    b: Inventory
    added: list[Item]
    removed: list[Item]
    changed: list[Change]
    packages: list[PackageChange] | None    # None when either side has no package data

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed
                    or any(p.a != p.b for p in self.packages or ()))

    def to_json(self) -> dict:
        def item(i: Item) -> dict:
            d = {"path": i.path, "type": i.type}
            if i.type == "file":
                d["size"] = i.size
            if i.target is not None:
                d["target"] = i.target
            if i.reasons:
                d["reasons"] = [r.to_json() for r in i.reasons]
            return d

        def side(i: Item) -> dict:
            d = {"type": i.type, "mode": format(i.mode, "04o")}
            if i.type == "file":
                d["size"] = i.size
                if i.sha256:
                    d["sha256"] = i.sha256
            if i.target is not None:
                d["target"] = i.target
            return d

        pk = None
        if self.packages is not None:
            pk = {
                "added": [{"name": p.name, "architecture": p.architecture, "version": p.b}
                          for p in self.packages if p.a is None],
                "removed": [{"name": p.name, "architecture": p.architecture, "version": p.a}
                            for p in self.packages if p.b is None],
                "changed": [{"name": p.name, "architecture": p.architecture, "a": p.a, "b": p.b}
                            for p in self.packages if p.a and p.b and p.a != p.b],
            }
        return {
            "a": {"name": self.a.name, "kind": self.a.kind},
            "b": {"name": self.b.name, "kind": self.b.kind},
            "added": [item(i) for i in self.added],
            "removed": [item(i) for i in self.removed],
            "changed": [{"path": c.path, "what": list(c.what), "a": side(c.a), "b": side(c.b),
                         **({"reasons": [r.to_json() for r in c.b.reasons]} if c.b.reasons else {})}
                        for c in self.changed],
            "packages": pk,
            "summary": {
                "added": len(self.added), "added_bytes": _bytes(self.added),
                "removed": len(self.removed), "removed_bytes": _bytes(self.removed),
                "changed": len(self.changed),
                "bytes_a": self.a.total_bytes, "bytes_b": self.b.total_bytes,
            },
        }


def _bytes(items: list[Item]) -> int:
    return sum(i.size for i in items if i.type == "file")


def _what(a: Item, b: Item) -> tuple[str, ...]:
    out = []
    if a.type != b.type:
        return ("type",)
    if a.target != b.target:
        out.append("target")
    if a.type != "symlink" and a.mode != b.mode:
        out.append("mode")
    if a.type == "file":
        if a.size != b.size:
            out.append("size")
        if a.sha256 and b.sha256 and a.sha256 != b.sha256:
            out.append("content")
    return tuple(out)


def _package_versions(inv: Inventory) -> dict[tuple[str, str], str] | None:
    if inv.packages_json is not None:
        return {(p["name"], p.get("architecture", "")): p["version"]
                for p in inv.packages_json.get("packages", [])}
    db = inv.db
    if db is None or not db.found:
        return None
    return {(g.package.name, g.package.architecture): g.package.version for g in group(inv).groups}


def diff(a: Inventory, b: Inventory) -> Diff:
    added = [b.items[p] for p in sorted(b.items.keys() - a.items.keys())]
    removed = [a.items[p] for p in sorted(a.items.keys() - b.items.keys())]
    changed = []
    for p in sorted(a.items.keys() & b.items.keys()):
        what = _what(a.items[p], b.items[p])
        if what:
            changed.append(Change(p, a.items[p], b.items[p], what))
    va, vb = _package_versions(a), _package_versions(b)
    packages = None
    if va is not None and vb is not None:
        packages = [PackageChange(n, arch, va.get((n, arch)), vb.get((n, arch)))
                    for n, arch in sorted(va.keys() | vb.keys())
                    if va.get((n, arch)) != vb.get((n, arch))]
    return Diff(a, b, added, removed, changed, packages)


FAIL_ON = ("any", "added-files", "added-packages", "removed-files", "growth=N%", "growth=SIZE")


def tripped(d: Diff, conditions: tuple[str, ...]) -> list[str]:
    """Which of the --fail-on conditions the diff meets, each said in words; BadInput
    for a condition that is not one of FAIL_ON."""
    from ..errors import BadInput
    from ..units import parse_size
    out = []
    before, after = d.a.total_bytes, d.b.total_bytes
    for cond in conditions:
        if cond == "any":
            hit = not d.empty
            why = "the images differ"
        elif cond == "added-files":
            hit, why = bool(d.added), f"{len(d.added)} files added"
        elif cond == "removed-files":
            hit, why = bool(d.removed), f"{len(d.removed)} files removed"
        elif cond == "added-packages":
            names = [p.name for p in d.packages or () if p.a is None]
            hit, why = bool(names), f"packages added: {', '.join(names)}"
        elif cond.startswith("growth="):
            limit = cond[len("growth="):]
            grew = after - before
            if limit.endswith("%"):
                try:
                    pct = float(limit[:-1])
                except ValueError:
                    raise BadInput(f"--fail-on {cond}: {limit!r} is not a percentage") from None
                hit = grew > before * pct / 100
            else:
                hit = grew > parse_size(limit, f"--fail-on {cond}")
            why = f"grew {human_size(max(grew, 0))} ({before} -> {after} bytes), more than {limit}"
        else:
            raise BadInput(f"--fail-on {cond}: not a condition (one of {', '.join(FAIL_ON)})")
        if hit:
            out.append(why)
    return out


def _size(i: Item) -> str:
    if i.type == "file":
        return human_size(i.size)
    if i.type == "symlink":
        return "-> " + (i.target or "")
    return i.type


def _why(i: Item) -> str:
    return describe(i.reasons[0], i.type) + (f" (+{len(i.reasons) - 1} more)" if len(i.reasons) > 1 else "") \
        if i.reasons else ""


def text(d: Diff, show_dirs: bool = False) -> str:
    keep = (lambda i: True) if show_dirs else (lambda i: i.type != "dir")
    rows = [("+", i) for i in d.added if keep(i)] + [("-", i) for i in d.removed if keep(i)]
    rows.sort(key=lambda r: r[1].path)
    w = max([len(i.path) for _, i in rows] + [len(c.path) for c in d.changed] + [10])
    lines = [f"--- {d.a.name}", f"+++ {d.b.name}"]
    for sign, i in rows:
        lines.append(f"{sign} {i.path:<{w}}  {_size(i):>10}  {_why(i)}".rstrip())
    for c in d.changed:
        if not keep(c.b) and not keep(c.a):
            continue
        parts = []
        for what in c.what:
            if what == "size":
                parts.append(f"size {human_size(c.a.size)} -> {human_size(c.b.size)}")
            elif what == "mode":
                parts.append(f"mode {c.a.mode:04o} -> {c.b.mode:04o}")
            elif what == "target":
                parts.append(f"target {c.a.target} -> {c.b.target}")
            elif what == "type":
                parts.append(f"{c.a.type} -> {c.b.type}")
            else:
                parts.append(what)
        lines.append(f"~ {c.path:<{w}}  {', '.join(parts)}")
    if d.packages is not None:
        for p in d.packages:
            arch = f":{p.architecture}" if p.architecture else ""
            if p.a is None:
                lines.append(f"+ package {p.name}{arch} {p.b}")
            elif p.b is None:
                lines.append(f"- package {p.name}{arch} {p.a}")
            else:
                lines.append(f"~ package {p.name}{arch} {p.a} -> {p.b}")
    lines.append(f"{len(d.added)} added ({human_size(_bytes(d.added))}), {len(d.removed)} removed "
                 f"({human_size(_bytes(d.removed))}), {len(d.changed)} changed; "
                 f"{human_size(d.a.total_bytes)} -> {human_size(d.b.total_bytes)}"
                 + ("" if d.packages is not None else "; packages: not known for both sides"))
    return "\n".join(lines)

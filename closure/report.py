"""Rendering of analyses for people: tables, dependency trees. Pure string builders."""
from __future__ import annotations

from .elf.ldso import LoadResult
from .model import Closure, Entry, Reason


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"


def describe(reason: Reason, entry_type: str = "symlink") -> str:
    """One reason in words; a `symlink` reason reads differently on a link (a step on the
    way) and on what a chain of links ends at (its destination)."""
    k = reason.kind
    if k == "target":
        return "target"
    if k == "needed":
        return f"needed {reason.name} by {reason.by}"
    if k == "interp":
        return f"interpreter of {reason.by}"
    if k == "dlopen-string":
        return f"dlopen string {reason.name!r} in {reason.by}"
    if k == "shebang":
        return f"#! interpreter of {reason.by}"
    if k == "recipe":
        return f"recipe {reason.recipe}" + (f" (for {reason.by})" if reason.by else "")
    if k == "traced":
        return f"traced by probe {reason.probe!r}" if reason.probe else "traced"
    if k == "symlink":
        if not reason.by:
            return "symlink"
        return f"link on the way to {reason.by}" if entry_type == "symlink" else f"destination of link {reason.by}"
    if k == "parent":
        return f"parent of {reason.by}"
    if k == "include":
        return "included" + (f" from {reason.name}" if reason.name else "")
    if k == "import":
        return f"import {reason.name} by {reason.by}"
    if k == "runtime":
        return f"runtime of {reason.by}"
    return k + (f" by {reason.by}" if reason.by else "")


def why(entry: Entry) -> str:
    first = describe(entry.reasons[0], entry.type) if entry.reasons else "?"
    more = len(entry.reasons) - 1
    return first + (f" (+{more} more)" if more > 0 else "")


def table(closure: Closure, show_dirs: bool = False) -> str:
    rows = []
    for e in closure.sorted_entries():
        if e.type == "dir" and not show_dirs:
            continue
        size = human_size(e.size) if e.type == "file" else ("-> " + e.target if e.type == "symlink" else "dir")
        rows.append((e.path, size, why(e)))
    w0 = max((len(r[0]) for r in rows), default=4)
    w1 = max((len(r[1]) for r in rows), default=4)
    lines = [f"{'PATH':<{w0}}  {'SIZE':>{w1}}  WHY"]
    lines += [f"{p:<{w0}}  {s:>{w1}}  {y}" for p, s, y in rows]
    files = sum(1 for e in closure.entries.values() if e.type == "file")
    links = sum(1 for e in closure.entries.values() if e.type == "symlink")
    dirs = sum(1 for e in closure.entries.values() if e.type == "dir")
    lines.append(f"total: {files} files, {links} symlinks, {dirs} dirs, "
                 f"{human_size(closure.total_bytes)} ({closure.total_bytes} bytes)")
    if closure.missing:
        lines.append(f"missing: {len(closure.missing)} (see warnings)")
    return "\n".join(lines)


def tree(result: LoadResult) -> str:
    """A dependency tree in the style of lddtree: each object expanded where first met."""
    main = result.main
    head = main.spelled
    if result.interp is not None:
        head += f" (interpreter => {result.interp.path or 'not found'})"
    lines = [head]
    children: dict[str, list] = {}
    for e in result.edges:
        children.setdefault(e.by, []).append(e)
    expanded = {main.spelled}

    def walk(by: str, depth: int) -> None:
        for e in children.get(by, []):
            target = e.path or "not found"
            lines.append(f"{'    ' * depth}{e.name} => {target}")
            obj = next((o for o in result.objects if e.name in o.names), None)
            if obj is not None and obj.spelled not in expanded:
                expanded.add(obj.spelled)
                walk(obj.spelled, depth + 1)

    walk(main.spelled, 1)
    return "\n".join(lines)

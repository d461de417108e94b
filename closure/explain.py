"""Why is PATH in the closure? The chain of reasons from a target down to it.

Pure: reads a Closure only (from collect() or an `analyze --json` document). Each reason
names the entry that caused it (`by`); a breadth-first walk back from PATH along those
links finds the shortest chain that starts at the target.
"""
from __future__ import annotations

import posixpath
from collections import deque
from dataclasses import dataclass

from .errors import BadInput, ClosureError
from .model import Closure, Reason
from .root import normpath, walk_links

# Reasons that say why the entry is there, in the order a chain prefers them: a file's own
# cause beats "a link's destination", which beats "a parent of something".
_PREFER = {"target": 0, "interp": 1, "needed": 1, "dlopen-string": 1, "shebang": 1,
           "recipe": 1, "traced": 1, "include": 1, "generated": 1, "import": 1, "runtime": 1,
           "symlink": 2, "parent": 3}


@dataclass(frozen=True)
class Step:
    path: str
    reason: Reason

    def to_json(self) -> dict:
        return {"path": self.path, "reason": self.reason.to_json()}

    def describe(self) -> str:
        r = self.reason
        if r.kind == "target":
            return "target"
        if r.kind == "needed":
            return f"needed {r.name}" if r.name else "needed"
        if r.kind == "dlopen-string":
            return f"dlopen string {r.name!r}" if r.name else "dlopen string"
        if r.kind == "recipe":
            return f"recipe {r.recipe}" + (f" (probe {r.probe})" if r.probe else "")
        if r.kind == "symlink":
            return "a link's destination"
        if r.kind == "shebang":
            return f"#! interpreter {r.name}" if r.name else "#! interpreter"
        if r.kind == "parent":
            return "parent directory"
        return r.kind + (f" {r.name}" if r.name else "")


@dataclass(frozen=True)
class Explanation:
    target: str
    path: str                              # as asked
    resolved: str                          # the entry it names (links in the entries followed)
    links: tuple[tuple[str, str], ...]     # links met resolving it
    chain: tuple[Step, ...]                # from the target (or a root reason) down to resolved
    from_target: bool                      # False: PATH is there, but not because of target

    def to_json(self) -> dict:
        return {"target": self.target, "path": self.path, "resolved": self.resolved,
                "links": [list(x) for x in self.links], "from_target": self.from_target,
                "chain": [s.to_json() for s in self.chain]}

    def lines(self) -> list[str]:
        out = []
        for i, s in enumerate(self.chain):
            lead = "" if i == 0 else "  " * (i - 1) + "└─ "
            out.append(f"{lead}{s.path}  ({s.describe()}"
                       + (f", by {s.reason.by}" if s.reason.by and i == 0 else "") + ")")
        for link, target in self.links:
            out.append(f"({self.path} is reached through the link {link} -> {target})")
        return out


def find_target(closure: Closure, target: str) -> str:
    """The closure's target that `target` names (a path, or a base name like curl)."""
    if target in closure.targets:
        return target
    if "/" in target:
        t = normpath(target)
        hits = [x for x in closure.targets if x == t]
    else:
        hits = [x for x in closure.targets if posixpath.basename(x) == target]
    if len(hits) != 1:
        raise BadInput(f"{target}: not one of the closure's targets ({', '.join(closure.targets)})")
    return hits[0]


def resolve_in(closure: Closure, path: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Follow the symlink entries of the closure along path (as the image would); a link
    named last is itself the entry asked for."""
    def lookup(p: str):
        e = closure.entries.get(p)
        return (None, None) if e is None else (e.type, e.target)
    links: list[tuple[str, str]] = []
    try:
        real = walk_links(normpath(path), lookup, links=links, follow_last=False, missing_ok=True)
    except ClosureError:  # a loop: no chain to show
        real = normpath(path)
    return real, tuple(links)


def by_name(closure: Closure, name: str) -> str | None:
    """The entry a bare name (a soname like libssl.so.3, a file name) stands for: the one
    a reason asked for by that name (needed, dlopen), else the one so named; None when
    none is; BadInput when several are."""
    asked = sorted({p for p, e in closure.entries.items() for r in e.reasons if r.name == name})
    hits = asked or sorted(p for p in closure.entries if posixpath.basename(p) == name)
    if len(hits) > 1:
        shown = ", ".join(hits[:5]) + (", ..." if len(hits) > 5 else "")
        raise BadInput(f"{name} names {len(hits)} entries ({shown}): give the full path")
    return hits[0] if hits else None


def explain(closure: Closure, target: str, path: str) -> Explanation | None:
    """The reason chain from target to path (an image path, or a bare soname or file name);
    None when path is not in the closure."""
    tgt = find_target(closure, target)
    if "/" not in path:
        named = by_name(closure, path)
        if named is None:
            return None
        path = named
    asked = normpath(path)
    if asked in closure.entries:
        resolved, links = asked, ()
    else:
        resolved, links = resolve_in(closure, asked)
        if resolved not in closure.entries:
            return None
    # Breadth-first from the path back along `by` links; first arrival wins (shortest).
    back: dict[str, tuple[str, Reason] | None] = {resolved: None}
    queue = deque([resolved])
    roots: list[tuple[str, Reason]] = []
    found = None
    while queue and found is None:
        cur = queue.popleft()
        entry = closure.entries.get(cur)
        if entry is None:
            continue
        for r in sorted(entry.reasons, key=lambda r: (_PREFER.get(r.kind, 1), r.kind, r.by or "")):
            if r.kind == "target" and cur == tgt:
                found = (cur, r)
                break
            if r.by is None:
                roots.append((cur, r))
                continue
            prev = normpath(r.by)
            if prev not in closure.entries:
                prev, _ = resolve_in(closure, prev)
            if prev not in back and prev in closure.entries:
                back[prev] = (cur, r)
                queue.append(prev)
    from_target = found is not None
    if found is None:
        if not roots:
            return Explanation(tgt, asked, resolved, links, (), False)
        found = roots[0]
    # Walk forward from the start to the path: each step is the entry and the reason it has.
    start, start_reason = found
    chain = [Step(start, start_reason)]
    cur = start
    while back.get(cur) is not None:
        nxt, r = back[cur]
        chain.append(Step(nxt, r))
        cur = nxt
    return Explanation(tgt, asked, resolved, links, tuple(chain), from_target)

"""Globs inside a Root, sorted, and the exclude patterns of the glob and tree actions."""
from __future__ import annotations

import fnmatch
import posixpath

from ..root import Root, normpath

_MAGIC = set("*?[")


def glob(root: Root, pattern: str) -> list[str]:
    """Image paths matching `pattern` (fnmatch per component, no `**`), sorted, spelled
    with the pattern's own directories (links in them are followed, not rewritten)."""
    parts = [p for p in normpath(pattern).split("/") if p]
    found = ["/"]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        nxt = []
        for base in found:
            if not _MAGIC & set(part):
                cand = posixpath.join(base, part)
                if (root.try_resolve(cand) is not None) if last else root.is_dir(cand):
                    nxt.append(cand)
                continue
            for name in root.listdir(base):
                if name.startswith(".") and not part.startswith("."):
                    continue
                if fnmatch.fnmatchcase(name, part):
                    cand = posixpath.join(base, name)
                    if last or root.is_dir(cand):
                        nxt.append(cand)
        found = nxt
    return sorted(found)


def excluded(rel: str, patterns: tuple[str, ...]) -> bool:
    """A pattern without '/' matches a base name at any depth; one with '/' matches the
    path relative to the tree's top."""
    name = posixpath.basename(rel)
    for pat in patterns:
        if fnmatch.fnmatchcase(rel if "/" in pat else name, pat):
            return True
    return False


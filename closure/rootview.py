"""A Root that sees only what a Closure puts in the image: its entries, with each file's
bytes read from its source in the real root. `closure build` and `closure slim` check what
they wrote through this view, without unpacking the image they just made."""
from __future__ import annotations

import io
import os
import posixpath
import stat

from .model import Closure
from .root import Root, normpath


class ClosureRoot(Root):
    def __init__(self, closure: Closure, root: Root):
        self.path = root.path
        self._lstat, self._links, self._resolved = {}, {}, {}
        self._base = root
        self._entries = dict(closure.entries)
        self._children: dict[str, list[str]] = {}
        for p in self._entries:
            while p != "/":   # parents are in a written image even when not listed
                parent = posixpath.dirname(p)
                kids = self._children.setdefault(parent, [])
                kids.append(posixpath.basename(p))
                p = parent
        self._children = {d: sorted(set(k)) for d, k in self._children.items()}

    def __repr__(self) -> str:
        return f"ClosureRoot({self.path!r}, {len(self._entries)} entries)"

    def lstat(self, ipath: str) -> os.stat_result | None:
        ipath = normpath(ipath)
        if ipath in self._lstat:
            return self._lstat[ipath]
        e = self._entries.get(ipath)
        st = None
        if e is None:
            if ipath == "/" or ipath in self._children:
                st = _fake(stat.S_IFDIR | 0o755, 0)
        elif e.type == "dir":
            st = _fake(stat.S_IFDIR | (e.mode & 0o7777), 0)
        elif e.type == "symlink":
            st = _fake(stat.S_IFLNK | 0o777, len(e.target or ""))
        elif e.content is not None:
            st = _fake(stat.S_IFREG | (e.mode & 0o7777), len(e.content))
        elif e.source is not None:
            real = self._base.lstat(self._base.resolve(e.source).path)
            st = real if real is not None and stat.S_ISREG(real.st_mode) else None
        self._lstat[ipath] = st
        return st

    def readlink(self, ipath: str) -> str:
        e = self._entries.get(normpath(ipath))
        if e is None or e.type != "symlink":
            raise OSError(f"not a symlink in the image: {ipath}")
        return e.target or ""

    def open(self, ipath: str):
        e = self._entries.get(normpath(ipath))
        if e is None or e.type != "file":
            raise FileNotFoundError(f"not a file in the image: {ipath}")
        if e.content is not None:
            return io.BytesIO(e.content)
        return self._base.open(self._base.resolve(e.source).path)

    def listdir(self, ipath: str) -> list[str]:
        r = self.try_resolve(ipath)
        return list(self._children.get(r.path, ())) if r is not None else []


def _fake(mode: int, size: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, 0, 0, size, 0, 0, 0))

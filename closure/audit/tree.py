"""The read-only view the package database reader needs of a filesystem: a Root on disk
(the host, a sysroot, an unpacked image) or an image's final filesystem held in memory.
"""
from __future__ import annotations

import posixpath
import stat
from typing import Protocol

from ..errors import ClosureError
from ..root import Root, normpath


class FileTree(Protocol):
    def read_bytes(self, ipath: str) -> bytes | None:
        """The bytes of the regular file at ipath (links followed inside the tree), or None."""

    def listdir(self, ipath: str) -> list[str]:
        """Sorted names in the directory at ipath (links followed); [] when it is not one."""

    def real_dir(self, ipath: str) -> str:
        """ipath with every directory link resolved inside the tree; as far as it exists,
        the rest appended lexically."""


class RootTree:
    """A FileTree over a Root. Directory resolutions are cached: the package database
    asks for thousands of paths that share a few hundred directories."""

    def __init__(self, root: Root):
        self.root = root
        self._dirs: dict[str, str] = {"/": "/", "": "/"}

    def read_bytes(self, ipath: str) -> bytes | None:
        head, name = posixpath.split(normpath(ipath))
        real = posixpath.join(self.real_dir(head), name)
        st = self.root.lstat(real)
        if st is not None and stat.S_ISLNK(st.st_mode):
            try:
                r = self.root.try_resolve(real)
            except ClosureError:
                return None
            if r is None:
                return None
            real = r.path
            st = self.root.lstat(real)
        if st is None or not stat.S_ISREG(st.st_mode):
            return None
        try:
            with self.root.open(real) as f:
                return f.read()
        except OSError:
            return None

    def listdir(self, ipath: str) -> list[str]:
        return self.root.listdir(ipath)

    def real_dir(self, ipath: str) -> str:
        have = self._dirs.get(ipath)
        if have is not None:
            return have
        head, name = posixpath.split(normpath(ipath))
        if not name:
            return "/"
        # The parent is real already, so one lstat tells whether this name is a link.
        cand = posixpath.join(self.real_dir(head), name)
        real = cand
        st = self.root.lstat(cand)
        if st is not None and stat.S_ISLNK(st.st_mode):
            try:
                r = self.root.try_resolve(cand)
            except ClosureError:     # a loop: keep the spelling
                r = None
            real = r.path if r is not None else cand
        self._dirs[ipath] = real
        return real

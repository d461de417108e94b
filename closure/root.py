"""Root: every read of the filesystem being analysed goes through here.

Image paths (absolute, '/'-separated, as seen inside the image) and host paths are kept
apart: `host()` is the one place that joins them. Symlinks resolve inside the root, so an
absolute link in an unpacked image never escapes to the host, and every link met on the
way is reported so it can join the closure.
"""
from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass

from .errors import BadInput, NotFound, SymlinkLoop

MAX_SYMLINK_HOPS = 40  # the kernel's limit (MAXSYMLINKS)


def normpath(path: str) -> str:
    """Normalise an image path lexically ('..' at '/' stays at '/')."""
    if not path.startswith("/"):
        path = "/" + path
    out = posixpath.normpath(path)
    return "/" + out.lstrip("/")


def walk_links(path: str, lookup, *, links: list | None = None, follow_last: bool = True,
               missing_ok: bool = False, asked: str | None = None) -> str:
    """Resolve path one component at a time inside an image-like tree, following its
    symlinks there: an absolute target restarts at the tree's '/', '..' is physical.
    `lookup(path)` gives (kind, link target) with kind None when path is absent. Links met
    are appended to `links`. Raises NotFound (unless missing_ok: then the walk goes on
    lexically) and SymlinkLoop. Root, the image reader and `explain` all walk with this."""
    asked = asked or path
    parts = [p for p in path.split("/") if p][::-1]  # a stack: next component last
    cur = "/"
    hops = 0
    while parts:
        name = parts.pop()
        if name == ".":
            continue
        if name == "..":
            cur = posixpath.dirname(cur)
            continue
        cand = posixpath.join(cur, name)
        kind, target = lookup(cand)
        if kind is None and not missing_ok:
            raise NotFound(f"no such file: {asked}")
        if kind == "symlink" and (parts or follow_last):
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise SymlinkLoop(f"symlink loop resolving {asked}")
            if links is not None and (cand, target) not in links:
                links.append((cand, target))
            if target.startswith("/"):
                cur = "/"
            parts.extend(p for p in target.split("/")[::-1] if p)
            continue
        if parts and kind not in ("dir", None):
            raise NotFound(f"not a directory on the way to {asked}: {cand}")
        cur = cand
    return cur


@dataclass(frozen=True)
class Resolved:
    path: str                              # final image path (no symlinks in it)
    spelled: str                           # the requested name, with its parent resolved
    links: tuple[tuple[str, str], ...]     # (link image path, target as stored), in order met


class Root:
    def __init__(self, path: str = "/"):
        host = os.path.abspath(path)
        if not os.path.isdir(host):
            raise NotFound(f"root is not a directory: {path}")
        self.path = host
        self._lstat: dict[str, os.stat_result | None] = {}
        self._links: dict[str, str] = {}
        self._resolved: dict[str, Resolved | BadInput] = {}

    def __repr__(self) -> str:
        return f"Root({self.path!r})"

    def host(self, ipath: str) -> str:
        """The host path of an image path, without following any link."""
        ipath = normpath(ipath)
        return ipath if self.path == "/" else self.path + ipath

    def lstat(self, ipath: str) -> os.stat_result | None:
        ipath = normpath(ipath)
        try:
            return self._lstat[ipath]
        except KeyError:
            pass
        try:
            st = os.lstat(self.host(ipath))
        except (FileNotFoundError, NotADirectoryError, ValueError):
            st = None   # ValueError: a NUL byte (from a config file, a recipe) names nothing
        except OSError as e:
            raise BadInput(f"cannot stat {ipath}: {e.strerror}") from None
        self._lstat[ipath] = st
        return st

    def readlink(self, ipath: str) -> str:
        ipath = normpath(ipath)
        if ipath not in self._links:
            self._links[ipath] = os.readlink(self.host(ipath))
        return self._links[ipath]

    def resolve(self, ipath: str) -> Resolved:
        """Follow every symlink inside the root. Raises NotFound / SymlinkLoop.

        '..' is taken physically, after the links before it, as the kernel does: a
        lexical normpath would be wrong under directory links. Answers are kept, like
        lstat's: the loader and the recipes ask for the same few paths many times."""
        hit = self._resolved.get(ipath)
        if hit is None:
            try:
                hit = self._resolve(ipath)
            except (NotFound, SymlinkLoop) as e:
                hit = e
            self._resolved[ipath] = hit
        if isinstance(hit, Exception):
            raise type(hit)(*hit.args)
        return hit

    def _resolve(self, ipath: str) -> Resolved:
        if not ipath.startswith("/"):
            ipath = "/" + ipath
        links: list[tuple[str, str]] = []
        head, _, name = ipath.rstrip("/").rpartition("/")
        if name in ("", ".", ".."):
            final = self._walk(ipath, links, ipath)
            return Resolved(final, final, tuple(links))
        parent = self._walk(head or "/", links, ipath)
        spelled = posixpath.join(parent, name)
        final = self._walk(spelled, links, ipath)
        return Resolved(final, spelled, tuple(links))

    def follow(self, ipath: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Where ipath leads, its links followed as far as they exist and the rest taken
        as spelled (to write a file where a dangling link points), and the links met.
        Raises SymlinkLoop, and NotFound when a file stands where a directory must be."""
        links: list[tuple[str, str]] = []
        final = walk_links(normpath(ipath), self._kind, links=links, missing_ok=True)
        return final, tuple(links)

    def _walk(self, ipath: str, links: list, asked: str) -> str:
        return walk_links(ipath, self._kind, links=links, asked=asked)

    def _kind(self, ipath: str) -> tuple[str | None, str | None]:
        st = self.lstat(ipath)
        if st is None:
            return None, None
        if stat.S_ISLNK(st.st_mode):
            return "symlink", self.readlink(ipath)
        return ("dir" if stat.S_ISDIR(st.st_mode) else "file"), None

    def try_resolve(self, ipath: str) -> Resolved | None:
        """None when ipath leads nowhere: missing, or a symlink loop."""
        try:
            return self.resolve(ipath)
        except (NotFound, SymlinkLoop):
            return None

    def exists(self, ipath: str) -> bool:
        """True when ipath resolves (links followed inside the root)."""
        return self.try_resolve(ipath) is not None

    def is_file(self, ipath: str) -> bool:
        """True when ipath resolves to a regular file (links followed inside the root)."""
        r = self.try_resolve(ipath)   # a resolved path exists: its lstat is known
        return r is not None and stat.S_ISREG(self.lstat(r.path).st_mode)

    def is_dir(self, ipath: str) -> bool:
        r = self.try_resolve(ipath)
        return r is not None and stat.S_ISDIR(self.lstat(r.path).st_mode)

    def open(self, ipath: str):
        """Open a resolved image path for binary reading: a regular file only. The type is
        checked on the open descriptor (O_NONBLOCK: opening a FIFO never waits), so a FIFO
        or device planted where a library or config belongs is refused, not waited on."""
        try:
            fd = os.open(self.host(ipath), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
        except PermissionError:
            raise BadInput(f"cannot read {ipath}: permission denied") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise BadInput(f"{ipath} is not a regular file (a FIFO or device cannot be analysed)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")

    def read_bytes(self, ipath: str) -> bytes:
        with self.open(self.resolve(ipath).path) as f:
            return f.read()

    def listdir(self, ipath: str) -> list[str]:
        try:
            return sorted(os.listdir(self.host(self.resolve(ipath).path)))
        except (NotFound, SymlinkLoop, OSError):
            return []

    def tree(self, top: str, skip=None) -> list[str]:
        """Every path below the resolved directory `top` (not top itself), sorted. Links are
        listed, never descended into; `skip(rel)`, rel being the path below top, leaves a
        path and everything under it out."""
        out = []
        stack = [top]
        while stack:
            d = stack.pop()
            for name in self.listdir(d):
                p = posixpath.join(d, name)
                if skip is not None and skip(p[len(top):].lstrip("/")):
                    continue
                st = self.lstat(p)
                if st is None:
                    continue
                out.append(p)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(p)
        return sorted(out)

    def to_image_path(self, host_path: str) -> str:
        """Map a host path under this root back to an image path."""
        host_path = os.path.abspath(host_path)
        if self.path == "/":
            return normpath(host_path)
        if host_path != self.path and not host_path.startswith(self.path + "/"):
            raise BadInput(f"{host_path} is outside the root {self.path}")
        return normpath(host_path[len(self.path):] or "/")

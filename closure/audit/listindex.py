"""A persistent index of a root's dpkg file lists: which `.list` files name a file.

Finding the owners of a closure's few hundred files means reading every `info/*.list` of
the root (~900 files, ~130k lines on a desktop-sized Debian): two thirds of a curl build.
The index maps each file name (last path component) to the lists that record it, so a
lookup reads only those lists. A name recorded by many lists (`copyright`, one per
package) keeps its full recorded paths instead, so it is answered without reading any.

It is kept in one file under the user's cache directory per root, written atomically,
and used only when its key still matches: the root's identity (real path, device,
inode) and (inode, size, mtime) of dpkg's status, diversions, info directory and every
list file. A stale, corrupt or foreign file is rebuilt, never trusted; a cache that
cannot be written only costs time. The index only narrows which lists are read: the
owners computed from them are the same with or without it.
"""
from __future__ import annotations

import array
import hashlib
import logging
import marshal
import os
import tempfile

from ..cache import cache_path
from ..root import Root

log = logging.getLogger(__name__)

VERSION = 3
COMMON = 16          # a name in more lists than this keeps its (list, path) pairs instead

# name -> list position(s); a common name -> (positions as uint32 bytes, its recorded paths
# joined by newlines): two flat objects a name, so loading the file stays fast.
Names = dict[str, object]


class ListIndex:
    def __init__(self, lists: tuple[str, ...], names: Names):
        self.lists = lists
        self._names = names

    def candidates(self, name: str) -> tuple[tuple[int, str | None], ...]:
        """(list position, recorded path or None) for a name: None means "read the list
        and look at its lines with this name"; a path is that line itself."""
        hit = self._names.get(name, ())
        if isinstance(hit, int):
            return ((hit, None),)
        if len(hit) == 2 and isinstance(hit[0], bytes):
            return tuple(zip(array.array("I", hit[0]), hit[1].split("\n")))
        return tuple((i, None) for i in hit)


def _key(root: Root, lists: tuple[str, ...], info_dir: str, others: tuple[str, ...]) -> bytes:
    h = hashlib.sha256()
    st = os.stat(root.path)
    h.update(f"{os.path.realpath(root.path)}\0{st.st_dev}\0{st.st_ino}\0".encode("utf-8", "surrogateescape"))
    for ipath in (info_dir, *others, *lists):
        s = root.lstat(ipath)
        stamp = "-" if s is None else f"{s.st_ino}:{s.st_size}:{s.st_mtime_ns}"
        h.update(f"{ipath}\0{stamp}\0".encode("utf-8", "surrogateescape"))
    return h.digest()


def build(lists: tuple[str, ...], read_lines) -> ListIndex:
    """Index lists, read_lines(position) giving each list's recorded paths."""
    where: dict[str, list[int]] = {}
    paths: dict[str, list[tuple[int, str]]] = {}
    for i in range(len(lists)):
        for path in read_lines(i):
            name = path.rpartition("/")[2]
            seen = where.setdefault(name, [])
            if not seen or seen[-1] != i:
                seen.append(i)
            paths.setdefault(name, []).append((i, path))
    names: Names = {}
    for n, w in where.items():
        if len(w) > COMMON:
            names[n] = (array.array("I", [i for i, _p in paths[n]]).tobytes(),
                        "\n".join(p for _i, p in paths[n]))
        else:
            names[n] = w[0] if len(w) == 1 else tuple(w)   # mostly one: no tuple to load
    return ListIndex(lists, names)


def load_or_build(root: Root, lists: tuple[str, ...], info_dir: str, others: tuple[str, ...],
                  read_lines) -> ListIndex:
    """The root's index from the cache when its key matches, else built and stored."""
    try:
        key = _key(root, lists, info_dir, others)
    except OSError:
        return build(lists, read_lines)
    path = cache_path("dpkg-index", hashlib.sha256(os.path.realpath(root.path).encode(
        "utf-8", "surrogateescape")).hexdigest()[:24] + ".marshal")
    try:
        with open(path, "rb") as f:
            version, have_key, have_lists, names = marshal.loads(f.read())  # load(f) is 6x slower
        if version == VERSION and have_key == key and tuple(have_lists) == lists:
            return ListIndex(lists, names)
    except FileNotFoundError:
        pass
    except (OSError, EOFError, ValueError, TypeError) as e:
        log.debug("ignoring the dpkg index cache %s: %s", path, e)
    index = build(lists, read_lines)
    _store(path, (VERSION, key, list(lists), index._names))
    return index


def _store(path: str, doc) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".index-", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "wb") as f:
                marshal.dump(doc, f)
            os.replace(tmp, path)   # whole or nothing; the last of two writers wins
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        log.debug("cannot cache the dpkg index in %s: %s", path, e)

"""Apply an image's layers, in order, into a temporary root, refusing hostile tarballs.

Every member name goes through `clean_name`, the one place names are checked: absolute
names and '..' components are refused. Nothing is ever created through a symlink that
leads out of the root: the tree is walked one component at a time with directory fds
(`openat` with O_NOFOLLOW); a link met on the way is followed by hand only when it is
relative and stays inside the root (`lib -> usr/lib`), and refused when it is absolute or
climbs above the root (an absolute target would mean the host's `/etc` if a write went
through it). The final component is never followed: an existing file or link there is
replaced, as tar does. Hard links must name a file already extracted inside the root.
Device nodes are refused (those under /dev are skipped: the runtime mounts its own /dev)
unless asked for; sizes are capped. A refused entry raises BadInput naming the layer and
the entry; `unpacked` then removes the partial root.

Whiteouts follow the OCI layer spec: `.wh.NAME` deletes NAME from the layers below,
`.wh..wh..opq` hides every lower entry of its directory (entries the same layer adds stay,
whichever order the tar lists them in).
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import BadInput, JobFailed
from . import atomic
from .read import Layer, SourceImage

log = logging.getLogger(__name__)

SLIM_PREFIX = "closure-slim-"      # unpacked roots in $TMPDIR: closure-slim-<pid>-<random>
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_LINK_HOPS = 40
COPY = 1 << 20
FD_CACHE = 64
MAX_META_BYTES = 1 << 20   # one PAX header or GNU long name
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Limits:
    """Caps that keep a hostile (or broken) image from filling the disk."""

    max_file_bytes: int = 16 << 30
    max_total_bytes: int = 64 << 30
    max_entries: int = 4_000_000
    max_name_bytes: int = 4096

    @property
    def max_stream_bytes(self) -> int:
        """A layer's uncompressed tar: file data plus headers and padding per entry."""
        return self.max_total_bytes + self.max_entries * 3 * tarfile.BLOCKSIZE


@dataclass
class ExtractStats:
    layers: int = 0
    entries: int = 0
    files: int = 0
    bytes: int = 0
    whiteouts: int = 0
    # The tar's owner of every file and directory made, by (st_dev, st_ino) of what is in
    # the temporary root. The files themselves stay ours: a probe sandbox (whose root is the
    # caller in a user namespace) must be able to read a 0700 directory of uid 1000.
    owners: dict = field(default_factory=dict, repr=False)
    skipped: list[str] = field(default_factory=list)    # one line per entry not created

    def to_json(self) -> dict:
        return {"layers": self.layers, "entries": self.entries, "files": self.files,
                "bytes": self.bytes, "whiteouts": self.whiteouts,
                "skipped": list(self.skipped)}


def clean_name(name: str, what: str = "entry") -> tuple[str, ...]:
    """A tar name as path components below the root: '.' and empty components dropped;
    absolute names, '..' components and NUL bytes refused. () is the root itself."""
    if "\0" in name:
        raise BadInput(f"{what} {name!r}: NUL byte in the name")
    if name.startswith("/"):
        raise BadInput(f"{what} {name!r}: absolute name")
    parts = tuple(name.split("/"))
    if "" in parts or "." in parts:     # tested first: names 1500 levels deep are cheap
        parts = tuple(p for p in parts if p not in ("", "."))
    if ".." in parts:
        raise BadInput(f"{what} {name!r}: '..' in the name leads out of the root")
    if WHITEOUT in name and any(p.startswith(WHITEOUT) for p in parts[:-1]):
        raise BadInput(f"{what} {name!r}: a whiteout name used as a directory")
    return parts


def check_whiteout(parts: tuple[str, ...], what: str) -> str | None:
    """The name a whiteout entry hides (None: the opaque marker, or other aufs metadata
    that hides nothing); BadInput for one that names nothing or climbs ('.wh..')."""
    base = parts[-1]
    if base == OPAQUE or base.startswith(WHITEOUT + WHITEOUT):
        return None
    victim = base[len(WHITEOUT):]
    if victim in ("", ".", ".."):
        raise BadInput(f"{what}: whiteout of nothing")
    return victim


def _show(parts) -> str:
    return "/" + "/".join(parts)


class _Tree:
    """The root being filled, addressed by component tuples, never by host path joins."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, _DIR_FLAGS)
        self.dir_modes: dict[tuple[str, ...], int] = {}
        # Parent directory fds by path: tar lists a directory's entries together, so most
        # lookups hit. Any removal of a directory or link forgets them all (a cached path
        # could now lead elsewhere); an fd still in use is closed when its user is done.
        self._cache: dict[tuple[str, ...], int] = {}
        self._real: dict[tuple[str, ...], tuple[str, ...]] = {}   # cached fds' real paths
        self.last_real: tuple[str, ...] = ()
        self._in_use: dict[int, int] = {}
        self.made: dict = {}      # (st_dev, st_ino) -> owner of directories made implicitly

    def close(self) -> None:
        self.forget()
        os.close(self.fd)

    def forget(self) -> None:
        for fd in self._cache.values():
            if not self._in_use.get(fd):
                os.close(fd)
        self._cache.clear()
        self._real.clear()

    def remove(self, name: str, dirfd: int) -> None:
        """Remove name (a directory with everything in it) without following any link."""
        st = _lstat(name, dirfd)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            self.forget()
            remove_tree(name, dirfd)
        else:
            if stat.S_ISLNK(st.st_mode):
                self.forget()
            os.unlink(name, dir_fd=dirfd)

    def walk(self, parts: tuple[str, ...], entry: str, create: bool, start=None) -> int | None:
        """An fd of the directory at parts (caller closes it). Missing directories are
        made when `create`, else None is returned. Links on the way: see the module doc.
        `start` = (fd, its real names, how many of parts it stands for) resumes from a
        directory already found. One fd is held at a time (paths may be 2000 levels deep);
        '..' from a link reopens its real parent from the root."""
        if start is not None:
            cur, names, todo = os.dup(start[0]), list(start[1]), list(reversed(parts[start[2]:]))
        else:
            cur, names, todo = os.dup(self.fd), [], list(reversed(parts))
        hops = 0
        try:
            while todo:
                name = todo.pop()
                if name in ("", "."):
                    continue
                if name == "..":
                    if not names:
                        raise BadInput(f"{entry}: a symlink on its path climbs out of the root")
                    names.pop()
                    up = self._reopen(names)
                    os.close(cur)
                    cur = up
                    continue
                try:
                    st = os.stat(name, dir_fd=cur, follow_symlinks=False)
                except FileNotFoundError:
                    if not create:
                        return None
                    os.mkdir(name, 0o700, dir_fd=cur)
                    self.dir_modes.setdefault(tuple(names) + (name,), 0o755)
                    st = os.stat(name, dir_fd=cur, follow_symlinks=False)
                    self.made[(st.st_dev, st.st_ino)] = (0, 0)
                if stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > MAX_LINK_HOPS:
                        raise BadInput(f"{entry}: too many symlinks on its path (a loop?)")
                    target = os.readlink(name, dir_fd=cur)
                    if target.startswith("/"):
                        raise BadInput(f"{entry}: its path goes through the symlink "
                                       f"{_show(tuple(names) + (name,))} -> {target}, which "
                                       f"leads out of the root when followed")
                    todo.extend(reversed(target.split("/")))
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    if not create:
                        return None
                    raise BadInput(f"{entry}: {_show(tuple(names) + (name,))} on its path is not a directory")
                down = os.open(name, _DIR_FLAGS, dir_fd=cur)
                os.close(cur)
                cur = down
                names.append(name)
            self.last_real = tuple(names)
            found, cur = cur, -1
            return found
        finally:
            if cur >= 0:
                os.close(cur)

    def _reopen(self, names: list[str]) -> int:
        """An fd of the real directory path `names` (no links on it), walked from the root."""
        fd = os.dup(self.fd)
        for n in names:
            down = os.open(n, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = down
        return fd

    @contextlib.contextmanager
    def parent(self, parts: tuple[str, ...], entry: str, create: bool = True) -> Iterator[int | None]:
        """The fd of the directory that holds parts[-1] (None: it does not exist, when not
        `create`). Valid inside the block only."""
        key = parts[:-1]
        fd = self._cache.get(key)
        if fd is None:
            # Resume from the parent's parent when known: a chain 1500 levels deep is then
            # one step per entry, not a walk from the root.
            up = self._cache.get(key[:-1]) if key else None
            start = (up, self._real[key[:-1]], len(key) - 1) if up is not None else None
            fd = self.walk(key, entry, create, start)
            if fd is None:
                yield None
                return
            if len(self._cache) >= FD_CACHE:
                self.forget()
            self._cache[key] = fd
            self._real[key] = self.last_real
        self._in_use[fd] = self._in_use.get(fd, 0) + 1
        try:
            yield fd
        finally:
            self._in_use[fd] -= 1
            if not self._in_use[fd]:
                del self._in_use[fd]
                if self._cache.get(key) != fd:     # forgotten meanwhile
                    os.close(fd)


def _lstat(name: str, dirfd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


class CappedTarInfo(tarfile.TarInfo):
    """tarfile reads a PAX header or a GNU long name into memory whole: cap them, so a
    header claiming gigabytes is refused instead of allocated."""

    def _proc_pax(self, tarfile_):
        self._check_meta()
        return super()._proc_pax(tarfile_)

    def _proc_gnulong(self, tarfile_):
        self._check_meta()
        return super()._proc_gnulong(tarfile_)

    def _check_meta(self) -> None:
        if self.size > MAX_META_BYTES:
            raise BadInput(f"a tar header record of {self.size} bytes (at most {MAX_META_BYTES})")


class _LayerApplier:
    def __init__(self, tree: _Tree, layer: Layer, limits: Limits, keep_devices: bool,
                 stats: ExtractStats):
        self.tree = tree
        self.layer = layer
        self.limits = limits
        self.keep_devices = keep_devices
        self.stats = stats
        self.written: set[tuple[str, ...]] = set()    # this layer's paths and their parents

    def where(self, member: tarfile.TarInfo) -> str:
        return f"{self.layer.label}: refused entry {member.name!r}"

    def bad(self, member: tarfile.TarInfo, why: str) -> BadInput:
        return BadInput(f"{self.where(member)}: {why}")

    def apply(self, stream) -> None:
        try:
            try:
                tar = tarfile.open(fileobj=stream, mode="r|", tarinfo=CappedTarInfo)
            except tarfile.ReadError as e:
                if getattr(stream, "size", None) == 0:
                    return      # an empty blob: an empty layer
                raise BadInput(f"not a tar ({e})") from None
            with tar:
                for member in tar:
                    self.stats.entries += 1
                    if self.stats.entries > self.limits.max_entries:
                        raise BadInput(f"more than {self.limits.max_entries} entries")
                    self.member(tar, member)
        except (tarfile.TarError, EOFError) as e:
            raise BadInput(f"{self.layer.label}: corrupt tar ({e})") from None
        except BadInput as e:
            if self.layer.label in str(e):
                raise
            raise BadInput(f"{self.layer.label}: {e}") from None

    def member(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        if len(m.name.encode("utf-8", "surrogateescape")) > self.limits.max_name_bytes:
            raise self.bad(m, "name too long")
        parts = clean_name(m.name, f"{self.layer.label}: refused entry")
        if not parts:
            return                      # the root itself ("./"): nothing to make
        base = parts[-1]
        if base.startswith(WHITEOUT):
            self.whiteout(m, parts)
            return
        try:
            if m.isdir():
                self.make_dir(m, parts)
            elif m.isreg():
                self.make_file(tar, m, parts)
            elif m.issym():
                self.make_symlink(m, parts)
            elif m.islnk():
                self.make_hardlink(m, parts)
            elif m.ischr() or m.isblk():
                self.make_device(m, parts)
            elif m.isfifo():
                with self.tree.parent(parts, self.where(m)) as pfd:
                    self.replace(pfd, base, False)
                    os.mkfifo(base, m.mode & 0o7777, dir_fd=pfd)
            else:
                self.stats.skipped.append(f"{_show(parts)}: tar type {m.type!r} not supported")
                return
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
                raise
            raise self.bad(m, e.strerror or str(e)) from None
        self.mark_written(parts)

    def mark_written(self, parts: tuple[str, ...]) -> None:
        """parts and its parents are this layer's: longest first, stopping at one already
        marked (its parents are too), so a chain 1500 levels deep stays linear."""
        for i in range(len(parts), 0, -1):
            if parts[:i] in self.written:
                break
            self.written.add(parts[:i])

    def own(self, pfd: int, name: str, m: tarfile.TarInfo) -> None:
        """Record the tar's owner for the inode just made (ids out of range: root)."""
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        ok = 0 <= m.uid < 0xFFFFFFFF and 0 <= m.gid < 0xFFFFFFFF
        self.stats.owners[(st.st_dev, st.st_ino)] = (m.uid, m.gid) if ok else (0, 0)

    # -- entry kinds ------------------------------------------------------------------------
    def replace(self, pfd: int, name: str, want_dir: bool) -> bool:
        """Clear the way for a new entry: remove what is there, except a directory when a
        directory comes (tar merges those). True when a directory is already there."""
        st = _lstat(name, pfd)
        if st is None:
            return False
        if want_dir and stat.S_ISDIR(st.st_mode):
            return True
        self.tree.remove(name, pfd)
        return False

    def make_dir(self, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        with self.tree.parent(parts, self.where(m)) as pfd:
            if not self.replace(pfd, parts[-1], True):
                os.mkdir(parts[-1], 0o700, dir_fd=pfd)
            self.own(pfd, parts[-1], m)
        self.tree.dir_modes[parts] = m.mode & 0o7777

    def make_file(self, tar: tarfile.TarFile, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        if m.size > self.limits.max_file_bytes:
            raise self.bad(m, f"{m.size} bytes, more than the {self.limits.max_file_bytes}-byte cap")
        if self.stats.bytes + m.size > self.limits.max_total_bytes:
            raise self.bad(m, f"the image unpacks to more than {self.limits.max_total_bytes} bytes")
        with self.tree.parent(parts, self.where(m)) as pfd:
            self.replace(pfd, parts[-1], False)
            fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=pfd)
            with os.fdopen(fd, "wb") as out:
                src = tar.extractfile(m)
                left = m.size
                while left:
                    chunk = src.read(min(COPY, left))
                    if not chunk:
                        raise self.bad(m, "the tar ends inside this file")
                    out.write(chunk)
                    left -= len(chunk)
                os.fchmod(out.fileno(), m.mode & 0o7777)
            self.own(pfd, parts[-1], m)
        self.stats.files += 1
        self.stats.bytes += m.size

    def make_symlink(self, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        # The target is stored as text and never followed here; where it points is checked
        # when something is written through it.
        if not m.linkname or "\0" in m.linkname:
            raise self.bad(m, "symlink with an empty target")
        with self.tree.parent(parts, self.where(m)) as pfd:
            self.replace(pfd, parts[-1], False)
            os.symlink(m.linkname, parts[-1], dir_fd=pfd)

    def make_hardlink(self, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        target = clean_name(m.linkname, f"{self.where(m)}: hard link to")
        if not target or target == parts:
            raise self.bad(m, "hard link to the root directory or to itself")
        with self.tree.parent(target, f"{self.where(m)}: hard link target", create=False) as tfd:
            st = _lstat(target[-1], tfd) if tfd is not None else None
            if st is None:
                raise self.bad(m, f"hard link to {m.linkname!r}, which is not in the image (yet)")
            if not stat.S_ISREG(st.st_mode):
                # a link to a directory loops; to a symlink or device it is no file
                raise self.bad(m, f"hard link to {m.linkname!r}, which is not a regular file")
            with self.tree.parent(parts, self.where(m)) as pfd:
                self.replace(pfd, parts[-1], False)
                os.link(target[-1], parts[-1], src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)

    def make_device(self, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        if not self.keep_devices:
            if parts[0] == "dev":
                self.stats.skipped.append(f"{_show(parts)}: device node (the runtime provides /dev)")
                return
            raise self.bad(m, "device node outside /dev (use --keep-devices to allow it)")
        kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
        with self.tree.parent(parts, self.where(m)) as pfd:
            self.replace(pfd, parts[-1], False)
            try:
                os.mknod(parts[-1], kind | (m.mode & 0o7777), os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
            except PermissionError:
                self.stats.skipped.append(f"{_show(parts)}: device node (not permitted here)")

    # -- whiteouts ------------------------------------------------------------------------
    def whiteout(self, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        self.stats.whiteouts += 1
        if parts[-1] == OPAQUE:
            self.opaque(m, parts[:-1])
            return
        victim = check_whiteout(parts, self.where(m))
        if victim is None:
            return                      # other aufs metadata (.wh..wh.plnk): not content
        hidden = parts[:-1] + (victim,)
        if hidden in self.written:
            return                      # a whiteout hides lower layers only
        with self.tree.parent(hidden, self.where(m), create=False) as pfd:
            if pfd is not None:
                self.tree.remove(victim, pfd)

    def opaque(self, m: tarfile.TarInfo, dir_parts: tuple[str, ...]) -> None:
        self.tree.forget()
        fd = self.tree.walk(dir_parts, self.where(m), create=True)
        try:
            self._hide_lower(fd, dir_parts)
        finally:
            os.close(fd)
        self.mark_written(dir_parts)

    def _hide_lower(self, dfd: int, dir_parts: tuple[str, ...]) -> None:
        for name in sorted(os.listdir(dfd)):
            child = dir_parts + (name,)
            if child not in self.written:
                self.tree.remove(name, dfd)
                continue
            st = _lstat(name, dfd)
            if st is not None and stat.S_ISDIR(st.st_mode):
                sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
                try:
                    self._hide_lower(sub, child)
                finally:
                    os.close(sub)


def extract(image: SourceImage, dest: str, *, keep_devices: bool = False,
            limits: Limits = Limits()) -> ExtractStats:
    """Apply every layer of image, bottom first, into the existing empty directory dest."""
    stats = ExtractStats()
    tree = _Tree(dest)
    tree.made = stats.owners
    try:
        for layer in image.layers:
            with image.layer(layer, max_bytes=limits.max_stream_bytes) as stream:
                _LayerApplier(tree, layer, limits, keep_devices, stats).apply(stream)
            stats.layers += 1
        _apply_dir_modes(tree)
    finally:
        tree.close()
    return stats


def _apply_dir_modes(tree: _Tree) -> None:
    """Directory modes last (made 0700 while filling), each set as the walk leaves it, so
    children get theirs before a parent's 0555 or 0000 shuts them. One walk of the tree
    as it now is (a directory a later layer removed or replaced by a link is not met),
    one fd at a time, links never followed."""
    cur = os.dup(tree.fd)
    path: list[str] = []
    todo = [_subdirs(cur)]      # per level: the subdirectories still to visit
    try:
        while True:
            if todo[-1]:
                name = todo[-1].pop()
                down = os.open(name, _DIR_FLAGS, dir_fd=cur)
                os.close(cur)
                cur = down
                path.append(name)
                todo.append(_subdirs(cur))
                continue
            todo.pop()
            if not path:
                break
            up = os.open("..", _DIR_FLAGS, dir_fd=cur)
            mode = tree.dir_modes.get(tuple(path))
            if mode is not None:
                os.fchmod(cur, mode)
            os.close(cur)
            cur = up
            path.pop()
    finally:
        os.close(cur)


def _subdirs(dfd: int) -> list[str]:
    with os.scandir(dfd) as it:
        return sorted((e.name for e in it if e.is_dir(follow_symlinks=False)), reverse=True)


@contextlib.contextmanager
def unpacked(image: SourceImage, *, tmpdir: str | None = None, keep_devices: bool = False,
             limits: Limits = Limits()) -> Iterator[tuple[str, ExtractStats]]:
    """A temporary root holding the image's files, removed when the block ends, however it
    ends (a refused entry included). Yields (root path, stats)."""
    parent = tmpdir or tempfile.gettempdir()
    # Roots that killed runs left behind (SIGKILL: no cleanup ran) go first: each is
    # locked while its run lives, so an unlocked one is provably dead.
    atomic.sweep_stale(parent, SLIM_PREFIX, "")
    with atomic.locked_dir(parent, SLIM_PREFIX, "") as base:
        os.chmod(base, 0o700)
        root = os.path.join(base, "rootfs")
        os.mkdir(root, 0o755)
        try:
            stats = extract(image, root, keep_devices=keep_devices, limits=limits)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise JobFailed(f"no space left in {parent} to unpack {image.path} "
                                f"(--tmpdir chooses where)") from None
            raise
        yield root, stats


def _rmtree(path: str) -> None:
    try:
        remove_tree(path)
    except OSError as e:
        log.warning("could not remove %s: %s", path, e)


def remove_tree(name: str, dir_fd: int | None = None) -> None:
    """Remove the directory name (relative to dir_fd) and all in it, however deep: no
    recursion and one directory fd open at a time (an image may nest 2000 levels, past
    Python's stack and the fd limit), whatever the modes (each directory is made 0700
    first). Links are never followed: directories are opened with O_NOFOLLOW and left
    through their real '..'."""
    cur = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    stack: list[tuple[str, list[str]]] = []      # (a directory's name, its subdirs left)
    try:
        stack.append(("", _clear_files(cur)))
        while True:
            here, subdirs = stack[-1]
            if subdirs:
                sub = subdirs.pop()
                os.chmod(sub, 0o700, dir_fd=cur)
                child = os.open(sub, _DIR_FLAGS, dir_fd=cur)
                os.close(cur)
                cur = child
                stack.append((sub, _clear_files(cur)))
                continue
            if len(stack) == 1:
                break
            stack.pop()
            parent = os.open("..", _DIR_FLAGS, dir_fd=cur)
            os.close(cur)
            cur = parent
            os.rmdir(here, dir_fd=cur)
    finally:
        os.close(cur)
    os.rmdir(name, dir_fd=dir_fd)


def _clear_files(dfd: int) -> list[str]:
    """Unlink everything in the directory but its subdirectories; return their names."""
    if os.fstat(dfd).st_mode & 0o700 != 0o700:
        os.chmod(dfd, 0o700)
    with os.scandir(dfd) as it:
        entries = list(it)
    subdirs = []
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            subdirs.append(e.name)
        else:
            os.unlink(e.name, dir_fd=dfd)
    return subdirs

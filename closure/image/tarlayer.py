"""The deterministic layer: a Closure + Root in, one tar stream out, hashed while written.

Two steps, so every writer (layer blob, rootfs tar, rootfs dir) sees the same thing:
`plan_layer` turns entries into an ordered tuple of LayerItems (parents first, missing
parent dirs made up, hard links found, modes cleaned), and `write_layer` streams those
items as a PAX tar through the compressor, computing diff_id (raw tar) and digest
(compressed blob) in the same single pass. A layer is never held in memory.
"""
from __future__ import annotations

import errno
import hashlib
import posixpath
import stat
import queue
import tarfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import BadInput
from ..model import Closure, excluded
from ..root import Root, normpath
from .compress import Compression
from .oci import HashingWriter

BLOCK = 1 << 20            # read size, and the fixed block size fed to the compressor
RECORD = tarfile.RECORDSIZE
MODE_SETID = stat.S_ISUID | stat.S_ISGID
PARENT_MODE = 0o755

Progress = Callable[[int], None]   # called with the number of content bytes written so far


@dataclass(frozen=True)
class LayerItem:
    path: str                      # absolute image path
    kind: str                      # "dir" | "file" | "symlink" | "hardlink"
    mode: int = 0o755
    size: int = 0
    link: str = ""                 # symlink text as stored, or the hard link's first path
    source: str | None = None      # resolved image path inside the Root to read bytes from
    content: bytes | None = None   # generated file bytes (instead of source)
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class LayerPlan:
    items: tuple[LayerItem, ...]

    @property
    def file_count(self) -> int:
        return sum(1 for i in self.items if i.kind == "file")

    @property
    def content_bytes(self) -> int:
        return sum(i.size for i in self.items if i.kind == "file")


@dataclass(frozen=True)
class LayerDigests:
    diff_id: str       # sha256 of the uncompressed tar
    digest: str        # sha256 of the blob as written
    size: int          # blob size
    raw_size: int      # tar size


def _path_key(path: str) -> list[str]:
    # Component order keeps a directory's contents together, right after the directory.
    return path.split("/")


def plan_layer(closure: Closure, root: Root, *, keep_setuid: bool = False,
               excludes: Iterable[str] = ()) -> LayerPlan:
    globs = tuple(excludes)
    entries = {}
    for path, entry in closure.entries.items():
        if normpath(path) != path:
            raise BadInput(f"closure entry path is not a clean absolute path: {path!r}")
        if path != "/" and not excluded(path, globs):
            entries[path] = entry

    wanted = set(entries)
    for path in entries:
        parent = posixpath.dirname(path)
        while parent != "/" and parent not in wanted:
            wanted.add(parent)
            parent = posixpath.dirname(parent)

    items = []
    first_name: dict[tuple[int, int], str] = {}   # (st_dev, st_ino) -> first path written
    for path in sorted(wanted, key=_path_key):
        entry = entries.get(path)
        parent = posixpath.dirname(path)
        if parent in entries and entries[parent].type != "dir":
            raise BadInput(f"{path} lies under {parent}, which is a {entries[parent].type} in the closure")
        if entry is None:
            items.append(LayerItem(path, "dir", PARENT_MODE))
            continue
        mode = entry.mode & 0o7777
        if not keep_setuid:
            mode &= ~MODE_SETID
        if entry.type == "dir":
            items.append(LayerItem(path, "dir", mode, uid=entry.uid, gid=entry.gid))
        elif entry.type == "symlink":
            if not entry.target:
                raise BadInput(f"symlink entry without a target: {path}")
            items.append(LayerItem(path, "symlink", 0o777, link=entry.target))
        elif entry.type == "file" and entry.content is not None:
            items.append(LayerItem(path, "file", mode, len(entry.content), content=entry.content,
                                   uid=entry.uid, gid=entry.gid))
        elif entry.type == "file" and entry.source:
            source = root.resolve(entry.source).path
            st = root.lstat(source)
            if st is None or not stat.S_ISREG(st.st_mode):
                raise BadInput(f"source of {path} is not a regular file: {entry.source}")
            key = (st.st_dev, st.st_ino)
            if key in first_name:
                items.append(LayerItem(path, "hardlink", mode, link=first_name[key]))
            else:
                first_name[key] = path
                items.append(LayerItem(path, "file", mode, st.st_size, source=source,
                                       uid=entry.uid, gid=entry.gid))
        else:
            raise BadInput(f"closure entry {path} has type {entry.type!r} and nothing to copy")
    return LayerPlan(tuple(items))


_TAR_TYPES = {"dir": tarfile.DIRTYPE, "file": tarfile.REGTYPE,
              "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}


def tar_header(item: LayerItem, mtime: int) -> bytes:
    """Every tar header we write is built here, field by field: no host owner, name or
    time can leak in (tarfile.gettarinfo would copy them from the file)."""
    info = tarfile.TarInfo(item.path.lstrip("/"))
    info.type = _TAR_TYPES[item.kind]
    info.mode = item.mode & 0o7777
    info.size = item.size if item.kind == "file" else 0
    info.linkname = item.link.lstrip("/") if item.kind == "hardlink" else item.link
    info.mtime = mtime
    info.uid, info.gid = item.uid, item.gid  # 0 unless a recipe owns it (a user's HOME)
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


class TarStream:
    """Writes items as one tar to `write` (a callable taking bytes). Reports file bytes."""

    def __init__(self, write: Callable, mtime: int, progress: Progress | None = None):
        self._write = write
        self._mtime = mtime
        self._progress = progress
        self.size = 0
        self.done = 0

    def _put(self, data) -> None:
        self._write(data)
        self.size += len(data)

    def add(self, item: LayerItem, root: Root) -> None:
        self._put(tar_header(item, self._mtime))
        if item.kind != "file":
            return
        if item.content is not None:
            self._put(item.content)
        else:
            try:
                with root.open(item.source) as f:
                    self._copy(f, item)
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise       # the output's disk, not the source: staging reports it
                what = item.source if item.source == item.path else f"{item.source} (for {item.path})"
                raise BadInput(f"cannot read {what}: {e.strerror}") from None
        self._put(_padding(item.size))
        self.done += item.size
        if self._progress:
            self._progress(self.done)

    def _copy(self, f, item: LayerItem) -> None:
        left = item.size
        while left:
            chunk = f.read(min(BLOCK, left))
            if not chunk:
                raise BadInput(f"{item.source} shrank while the image was written ({item.path})")
            self._put(chunk)
            left -= len(chunk)
        if f.read(1):
            raise BadInput(f"{item.source} grew while the image was written ({item.path})")

    def close(self) -> None:
        end = b"\0" * (2 * tarfile.BLOCKSIZE)
        self._put(end + b"\0" * (-(self.size + len(end)) % RECORD))


class _CompressingSink:
    """Raw tar bytes in: hashed (diff_id) and cut into fixed blocks here; compressed,
    hashed again (digest) and written by one worker thread, so reading and compressing
    overlap (igzip, zstd and hashlib release the GIL). Fixed blocks make the compressed
    bytes independent of how the input happened to arrive; the bounded queue caps memory
    at a few blocks."""

    def __init__(self, out, compression: Compression):
        self._raw = hashlib.sha256()
        self._compressor = compression.compressor()
        self._out = HashingWriter(out)
        self._buf = bytearray()
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._aborted = False   # set on the way out: queued blocks are dropped, not compressed
        self._thread = threading.Thread(target=self._run, name="layer-compress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (block := self._queue.get()) is not None:
                if not self._aborted:
                    self._out.write(self._compressor.compress(block))
            self._out.write(self._compressor.flush())
        except BaseException as e:  # handed to the producer, which re-raises it
            self._error = e
            while self._queue.get() is not None:   # keep the producer from blocking
                pass

    def _send(self, block) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(block)

    def write(self, data) -> None:
        self._raw.update(data)
        buf = self._buf
        buf += data
        if len(buf) >= BLOCK:
            whole = len(buf) - len(buf) % BLOCK
            for i in range(0, whole, BLOCK):
                self._send(bytes(buf[i:i + BLOCK]))
            del buf[:whole]

    def _stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def finish(self, raw_size: int) -> LayerDigests:
        if self._buf:
            self._send(bytes(self._buf))
            self._buf.clear()
        self._stop()
        if self._error is not None:
            raise self._error
        return LayerDigests("sha256:" + self._raw.hexdigest(), self._out.digest, self._out.size, raw_size)

    def abort(self) -> None:
        if self._thread.is_alive():
            self._aborted = True
            self._stop()


def write_layer(plan: LayerPlan, root: Root, out, compression: Compression, *, mtime: int,
                progress: Progress | None = None) -> LayerDigests:
    """Stream the plan as a tar through `compression` into the binary file `out`."""
    sink = _CompressingSink(out, compression)
    try:
        tar = TarStream(sink.write, mtime, progress)
        for item in plan.items:
            tar.add(item, root)
        tar.close()
        return sink.finish(tar.size)
    finally:
        sink.abort()

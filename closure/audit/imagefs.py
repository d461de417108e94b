"""An image's final filesystem, listed in memory: every path with its type, mode, size,
link target, sha256/sha1 and the layer it came from, plus the bytes of the few small files
the package database reader needs (dpkg/apk records, copyright files, os-release).

Layers are read through closure.image.read (digests checked as the bytes stream by) and
applied with OCI whiteouts, as extraction would, but nothing is written to disk: an audit
of a hostile image cannot touch the host, and hashing happens in the same single pass.
Per-layer numbers (bytes added, bytes later hidden) are kept for `closure inspect`.
"""
from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import tarfile
from dataclasses import dataclass, field

from ..errors import BadInput, ClosureError
from ..image.extract import MAX_LINK_HOPS, OPAQUE, WHITEOUT, CappedTarInfo, Limits, check_whiteout, clean_name
from ..image.read import SourceImage
from ..root import walk_links

READ = 1 << 20
# Small files whose bytes the audit reads (globs on the real path).
CAPTURE = (
    "/var/lib/dpkg/status", "/var/lib/dpkg/diversions", "/var/lib/dpkg/status.d/*",
    "/var/lib/dpkg/info/*.list", "/var/lib/dpkg/info/*.md5sums", "/lib/apk/db/installed",
    "/usr/lib/apk/db/installed", "/usr/share/doc/*/copyright", "/etc/os-release",
    "/usr/lib/os-release",
)
MAX_CAPTURE_FILE = 32 << 20
MAX_CAPTURE_TOTAL = 512 << 20


@dataclass
class Node:
    path: str
    type: str                        # file | symlink | dir | other
    mode: int = 0o755
    size: int = 0
    target: str | None = None        # symlink text
    sha256: str | None = None
    sha1: str | None = None
    layer: int = 0
    content: bytes | None = None     # captured metadata files only


@dataclass
class LayerStats:
    index: int
    entries: int = 0
    files: int = 0
    bytes: int = 0                   # file bytes this layer adds
    whiteouts: int = 0
    hidden_bytes: int = 0            # bytes of this layer's files a later layer replaced or removed


@dataclass
class ImageFS:
    nodes: dict[str, Node] = field(default_factory=dict)
    layers: list[LayerStats] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    _kids: dict[str, set[str]] = field(default_factory=dict)   # dir -> its children's paths
    _dirs: dict[tuple, str] = field(default_factory=dict)      # entry parents met: parts -> real dir
    _captured: int = 0
    _entries: int = 0

    # -- building -------------------------------------------------------------------------
    @classmethod
    def read(cls, image: SourceImage, limits: Limits | None = None) -> "ImageFS":
        """The image's tree, its layers applied by the rules extraction applies (the same
        entries refused: an audit and a slim of one image agree on what is hostile)."""
        fs = cls(limits=limits or Limits())
        fs.nodes["/"] = Node("/", "dir", 0o755)
        for layer in image.layers:
            stats = LayerStats(layer.index)
            with image.layer(layer, max_bytes=fs.limits.max_stream_bytes) as stream:
                fs._apply(stream, stats, f"{image.path}: {layer.label}")
            fs.layers.append(stats)
        return fs

    def _apply(self, stream, stats: LayerStats, label: str) -> None:
        try:
            tar = tarfile.open(fileobj=stream, mode="r|", tarinfo=CappedTarInfo)
        except tarfile.ReadError as e:
            if getattr(stream, "size", None) == 0:
                return
            raise BadInput(f"{label}: not a tar ({e})") from None
        added: list[Node] = []
        mine: dict[str, Node] = {}
        try:
            for m in tar:
                stats.entries += 1
                self._entries += 1
                if self._entries > self.limits.max_entries:
                    raise BadInput(f"{label}: more than {self.limits.max_entries} entries")
                what = f"{label}: refused entry {m.name!r}"
                if len(m.name.encode("utf-8", "surrogateescape")) > self.limits.max_name_bytes:
                    raise BadInput(f"{what}: name too long")
                parts = clean_name(m.name, f"{label}: entry")
                if not parts:
                    continue
                parent = self._parent(parts, mine, what)
                if parts[-1].startswith(WHITEOUT):
                    stats.whiteouts += 1
                    self._whiteout(parent, parts, what)
                    self._dirs.clear()
                    continue
                path = posixpath.join(parent, parts[-1])
                node = self._node(tar, m, path, stats.index, mine, label)
                prev = mine.get(path) or self.nodes.get(path)
                if node.type == "symlink" or (node.type != "dir" and prev is not None and prev.type == "dir"):
                    self._dirs.clear()      # a path known to be a dir may now lead elsewhere
                if node.type == "file":
                    stats.files += 1
                    stats.bytes += node.size
                added.append(node)
                mine[path] = node
        except (tarfile.TarError, EOFError) as e:
            raise BadInput(f"{label}: corrupt tar ({e})") from None
        finally:
            tar.close()
        for node in added:
            self._put(node)
        self._dirs.clear()

    def _parent(self, parts: tuple[str, ...], mine: dict, what: str) -> str:
        """The real directory holding parts[-1], links on the way followed as extraction
        follows them: relative ones staying inside the root only. Missing directories are
        taken as spelled (tar may omit parents); a file on the way is refused."""
        key = parts[:-1]
        k = len(key)
        while k and key[:k] not in self._dirs:      # resume from the deepest dir known
            k -= 1
        cur = self._dirs.get(key[:k], "/")
        todo = list(reversed(key[k:]))
        hops = 0
        while todo:
            name = todo.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if cur == "/":
                    raise BadInput(f"{what}: a symlink on its path climbs out of the root")
                cur = posixpath.dirname(cur)
                continue
            cand = posixpath.join(cur, name)
            node = mine.get(cand) or self.nodes.get(cand)
            if node is not None and node.type == "symlink":
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise BadInput(f"{what}: too many symlinks on its path (a loop?)")
                if node.target.startswith("/"):
                    raise BadInput(f"{what}: its path goes through the symlink {cand} -> "
                                   f"{node.target}, which leads out of the root when followed")
                todo.extend(reversed(node.target.split("/")))
                continue
            if node is not None and node.type != "dir":
                raise BadInput(f"{what}: {cand} on its path is not a directory")
            cur = cand
        self._dirs[key] = cur
        return cur

    def _node(self, tar, m: tarfile.TarInfo, path: str, layer: int, mine: dict, label: str) -> Node:
        mode = m.mode & 0o7777
        if m.isdir():
            return Node(path, "dir", mode, layer=layer)
        if m.issym():
            if not m.linkname or "\0" in m.linkname:
                raise BadInput(f"{label}: refused entry {m.name!r}: symlink with an empty target")
            return Node(path, "symlink", 0o777, target=m.linkname, layer=layer)
        if m.islnk():
            tparts = clean_name(m.linkname, f"{label}: hard link {m.name!r} to")
            tpath = "/" + "/".join(tparts)
            src = mine.get(tpath) or self.nodes.get(tpath)
            if src is None or src.type != "file":
                raise BadInput(f"{label}: hard link {m.name!r} to {m.linkname!r}, which is not a file in the image")
            return Node(path, "file", mode, src.size, sha256=src.sha256, sha1=src.sha1, layer=layer,
                        content=src.content)
        if not m.isreg():
            return Node(path, "other", mode, layer=layer)
        if m.size > self.limits.max_file_bytes:
            raise BadInput(f"{label}: refused entry {m.name!r}: {m.size} bytes, more than the "
                           f"{self.limits.max_file_bytes}-byte cap")
        f = tar.extractfile(m)
        h256, h1 = hashlib.sha256(), hashlib.sha1()
        keep = (m.size <= MAX_CAPTURE_FILE and self._captured + m.size <= MAX_CAPTURE_TOTAL
                and any(fnmatch.fnmatchcase(path, g) for g in CAPTURE))
        chunks = []
        left = m.size
        while left:
            chunk = f.read(min(READ, left))
            if not chunk:
                raise BadInput(f"{label}: the tar ends inside {m.name!r}")
            h256.update(chunk)
            h1.update(chunk)
            if keep:
                chunks.append(chunk)
            left -= len(chunk)
        content = None
        if keep:
            content = b"".join(chunks)
            self._captured += len(content)
        return Node(path, "file", mode, m.size, sha256=h256.hexdigest(), sha1=h1.hexdigest(),
                    layer=layer, content=content)

    def _drop(self, path: str, below_only: bool = False) -> None:
        """Remove path (unless below_only) and everything below it, counting the bytes of
        lower layers' files this hides. Walks the subtree only (40000 opaque markers must
        not each scan the whole tree)."""
        if path not in self.nodes:
            return
        stack = list(self._kids.pop(path, ())) if below_only else [path]
        if not below_only and path != "/":
            self._kids.get(posixpath.dirname(path), set()).discard(path)
        while stack:
            p = stack.pop()
            if p == "/":
                continue
            node = self.nodes.pop(p, None)
            stack.extend(self._kids.pop(p, ()))
            if node is not None and node.type == "file" and node.layer < len(self.layers):
                self.layers[node.layer].hidden_bytes += node.size

    def _whiteout(self, parent: str, parts: tuple[str, ...], what: str) -> None:
        if parts[-1] == OPAQUE:
            self._drop(parent, below_only=True)
            return
        victim = check_whiteout(parts, what)
        if victim is not None:
            self._drop(posixpath.join(parent, victim))

    def _put(self, node: Node) -> None:
        have = self.nodes.get(node.path)
        if have is not None and not (have.type == "dir" and node.type == "dir"):
            self._drop(node.path)
        child = node.path
        parent = posixpath.dirname(child)
        self.nodes[node.path] = node
        while True:     # tar may omit parents
            self._kids.setdefault(parent, set()).add(child)
            if parent in self.nodes:
                break
            self.nodes[parent] = Node(parent, "dir", 0o755, layer=node.layer)
            child, parent = parent, posixpath.dirname(parent)

    # -- reading (the FileTree protocol) -------------------------------------------------------
    def resolve(self, path: str, mine: dict | None = None, follow_last: bool = True) -> str | None:
        """The real path of path, symlinks followed inside the image; None if it is absent."""
        if mine is None and path in self.nodes and (not follow_last or self.nodes[path].type != "symlink"):
            return path     # every key of nodes is a real path: no link above it
        def lookup(p: str):
            node = (mine or {}).get(p) or self.nodes.get(p)
            return (None, None) if node is None else (node.type, node.target)
        try:
            return walk_links(path, lookup, follow_last=follow_last)
        except ClosureError:   # absent, or a link loop
            return None

    def real_dir(self, path: str, mine: dict | None = None) -> str:
        """path with its directory links resolved; missing parts appended lexically."""
        tail: list[str] = []      # a loop, not recursion: paths may be 2000 levels deep
        while True:
            real = self.resolve(path, mine)
            if real is not None:
                return posixpath.join(real, *reversed(tail))
            path, name = posixpath.split(path.rstrip("/") or "/")
            if not name:
                return posixpath.join("/", *reversed(tail))
            tail.append(name)

    def node(self, path: str) -> Node | None:
        real = self.resolve(path)
        return None if real is None else self.nodes.get(real)

    def read_bytes(self, ipath: str) -> bytes | None:
        node = self.node(ipath)
        return node.content if node is not None and node.type == "file" else None

    def listdir(self, ipath: str) -> list[str]:
        real = self.resolve(ipath)
        if real is None:
            return []
        return sorted(posixpath.basename(p) for p in self._kids.get(real, ()))

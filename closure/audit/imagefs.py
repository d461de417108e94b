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
from ..image.extract import OPAQUE, WHITEOUT, clean_name
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
    _children: dict[str, list[str]] | None = None
    _captured: int = 0

    # -- building -------------------------------------------------------------------------
    @classmethod
    def read(cls, image: SourceImage) -> "ImageFS":
        fs = cls()
        fs.nodes["/"] = Node("/", "dir", 0o755)
        for layer in image.layers:
            stats = LayerStats(layer.index)
            with image.layer(layer) as stream:
                fs._apply(stream, stats, f"{image.path}: {layer.label}")
            fs.layers.append(stats)
        return fs

    def _apply(self, stream, stats: LayerStats, label: str) -> None:
        try:
            tar = tarfile.open(fileobj=stream, mode="r|")
        except tarfile.ReadError as e:
            if getattr(stream, "size", None) == 0:
                return
            raise BadInput(f"{label}: not a tar ({e})") from None
        added: list[Node] = []
        mine: dict[str, Node] = {}
        try:
            for m in tar:
                stats.entries += 1
                parts = clean_name(m.name, f"{label}: entry")
                if not parts:
                    continue
                if parts[-1].startswith(WHITEOUT):
                    stats.whiteouts += 1
                    self._whiteout(parts, mine)
                    continue
                parent = self.real_dir("/" + "/".join(parts[:-1]), mine)
                path = posixpath.join(parent, parts[-1])
                node = self._node(tar, m, path, stats.index, mine, label)
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
        self._children = None

    def _node(self, tar, m: tarfile.TarInfo, path: str, layer: int, mine: dict, label: str) -> Node:
        mode = m.mode & 0o7777
        if m.isdir():
            return Node(path, "dir", mode, layer=layer)
        if m.issym():
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
        lower layers' files this hides."""
        have = self.nodes.get(path)
        victims = [] if below_only or have is None else [path]
        if have is not None and have.type == "dir":
            prefix = path.rstrip("/") + "/"
            victims += [p for p in self.nodes if p.startswith(prefix)]
        for p in victims:
            if p == "/":
                continue
            node = self.nodes.pop(p)
            if node.type == "file" and node.layer < len(self.layers):
                self.layers[node.layer].hidden_bytes += node.size

    def _whiteout(self, parts: tuple[str, ...], mine: dict) -> None:
        parent = self.real_dir("/" + "/".join(parts[:-1]), mine)
        if parts[-1] == OPAQUE:
            self._drop(parent, below_only=True)
            return
        victim = parts[-1][len(WHITEOUT):]
        if victim.startswith(WHITEOUT) or victim in ("", ".", ".."):
            return      # aufs metadata (.wh..wh.plnk), not content
        self._drop(posixpath.join(parent, victim))

    def _put(self, node: Node) -> None:
        have = self.nodes.get(node.path)
        if have is not None and not (have.type == "dir" and node.type == "dir"):
            self._drop(node.path)
        parent = posixpath.dirname(node.path)
        while parent not in self.nodes:     # tar may omit parents
            self.nodes[parent] = Node(parent, "dir", 0o755, layer=node.layer)
            parent = posixpath.dirname(parent)
        self.nodes[node.path] = node

    # -- reading (the FileTree protocol) -------------------------------------------------------
    def resolve(self, path: str, mine: dict | None = None, follow_last: bool = True) -> str | None:
        """The real path of path, symlinks followed inside the image; None if it is absent."""
        def lookup(p: str):
            node = (mine or {}).get(p) or self.nodes.get(p)
            return (None, None) if node is None else (node.type, node.target)
        try:
            return walk_links(path, lookup, follow_last=follow_last)
        except ClosureError:   # absent, or a link loop
            return None

    def real_dir(self, path: str, mine: dict | None = None) -> str:
        """path with its directory links resolved; missing parts appended lexically."""
        real = self.resolve(path, mine)
        if real is not None:
            return real
        head, name = posixpath.split(path.rstrip("/") or "/")
        if not name:
            return "/"
        return posixpath.join(self.real_dir(head, mine), name)

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
        if self._children is None:
            kids: dict[str, list[str]] = {}
            for p in self.nodes:
                if p != "/":
                    kids.setdefault(posixpath.dirname(p), []).append(posixpath.basename(p))
            self._children = {d: sorted(v) for d, v in kids.items()}
        return list(self._children.get(real, ()))

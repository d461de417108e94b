"""Read-only access to an image on disk, by path inside it: an OCI layout directory or an
image tar (OCI archive, docker-archive, or both). Tar members are read in place."""
from __future__ import annotations

import json
import os
import stat
import tarfile

from ..errors import BadInput
from ..root import Root, normpath
from .oci import MT_INDEX, MT_MANIFEST


class ImageSource:
    def __init__(self, path: str):
        self.path = path
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        self._root: Root | None = None
        if os.path.isdir(path):
            self._root = Root(path)
        elif os.path.isfile(path):
            try:
                self._tar = tarfile.open(path, "r:")
                for m in self._tar.getmembers():
                    self._members[normpath(m.name)] = m
            except (tarfile.TarError, OSError) as e:
                raise BadInput(f"{path}: not an image tar ({e})") from None
        else:
            raise BadInput(f"no such image: {path}")

    @property
    def is_archive(self) -> bool:
        return self._tar is not None

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def __enter__(self) -> "ImageSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def exists(self, rel: str) -> bool:
        return self.size(rel) is not None

    def size(self, rel: str) -> int | None:
        """Size of the regular file at rel, None when it is absent or not a regular file."""
        ipath = normpath(rel)
        if self._root is not None:
            st = self._root.lstat(ipath)
            return st.st_size if st is not None and stat.S_ISREG(st.st_mode) else None
        m = self._members.get(ipath)
        return m.size if m is not None and m.isreg() else None

    def open(self, rel: str):
        ipath = normpath(rel)
        if self.size(ipath) is None:
            raise BadInput(f"{self.path}: missing {rel}")
        if self._root is not None:
            return self._root.open(ipath)
        return self._tar.extractfile(self._members[ipath])

    def read_json(self, rel: str):
        with self.open(rel) as f:
            try:
                return json.loads(f.read())
            except ValueError as e:
                raise BadInput(f"{self.path}: {rel} is not JSON ({e})") from None


def blob_rel(digest: str) -> str:
    alg, _, hexd = digest.partition(":")
    return f"blobs/{alg}/{hexd}"


def first_manifest(src: ImageSource) -> dict:
    """The first image manifest reachable from index.json (nested indexes followed)."""
    index = src.read_json("index.json")
    todo = list(index.get("manifests", []))
    while todo:
        desc = todo.pop(0)
        doc = src.read_json(blob_rel(desc["digest"]))
        if desc.get("mediaType") == MT_INDEX:
            todo[:0] = doc.get("manifests", [])
        elif desc.get("mediaType") == MT_MANIFEST:
            return doc
    raise BadInput(f"{src.path}: index.json names no image manifest")


def decompressed(raw, media_type: str = "", head: bytes = b""):
    """A reader of raw's uncompressed bytes, by media type or else by magic number."""
    if media_type.endswith(("+gzip", ".gzip")) or head[:2] == b"\x1f\x8b":
        from isal import igzip
        return igzip.GzipFile(fileobj=raw, mode="rb")
    if media_type.endswith("+zstd") or head[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return raw

"""OCI image-spec vocabulary shared by the writers and the validator, and the two ways
bytes become blobs: a JSON document, or a stream hashed while it is written."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"   # + "+gzip" / "+zstd"
LAYER_MEDIA_TYPES = frozenset({MT_LAYER, MT_LAYER + "+gzip", MT_LAYER + "+zstd"})
LAYOUT_VERSION = "1.0.0"
ANN_REF_NAME = "org.opencontainers.image.ref.name"
ANN_CREATED = "org.opencontainers.image.created"
ANN_CONTAINERD_NAME = "io.containerd.image.name"


def canonical_json(doc) -> bytes:
    """The exact bytes we hash and write: sorted keys, no spaces, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str            # "sha256:<hex>"
    size: int
    annotations: dict = field(default_factory=dict, hash=False, compare=False)
    platform: dict | None = field(default=None, hash=False, compare=False)

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    def to_json(self) -> dict:
        d = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform:
            d["platform"] = dict(self.platform)
        return d


def blob_rel(digest: str) -> str:
    """Where a blob lives inside a layout: blobs/<alg>/<hex>."""
    alg, _, hexd = digest.partition(":")
    return f"blobs/{alg}/{hexd}"


def blob_path(layout_dir: str, digest: str) -> str:
    return os.path.join(layout_dir, blob_rel(digest))


def write_json_blob(layout_dir: str, media_type: str, doc) -> Descriptor:
    data = canonical_json(doc)
    desc = Descriptor(media_type, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    path = blob_path(layout_dir, desc.digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return desc


class HashingWriter:
    """A write-only file that keeps the sha256 and size of everything written to it."""

    def __init__(self, f):
        self._f = f
        self._h = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self._h.update(data)
        self.size += len(data)
        return self._f.write(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()

"""Pull one image from a registry into an OCI layout directory: the manifest (from an index,
the one for the platform asked), its config and layers, each blob streamed to disk with its
digest and size checked. What every command that reads `docker://` goes through."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..errors import BadInput
from ..image.config import Platform, host_platform
from ..image.oci import (ANN_CONTAINERD_NAME, ANN_REF_NAME, LAYOUT_VERSION, MT_INDEX, Descriptor,
                         blob_path, canonical_json)
from ..image.read import DIGEST, INDEX_TYPES, MANIFEST_TYPES
from .client import Registry
from .reference import Reference

DEFAULT_MAX_BYTES = 64 << 30


def parse_platform(text: str) -> Platform:
    """'linux/arm64' or 'linux/arm/v7' -> Platform."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise BadInput(f"--platform {text!r}: give OS/ARCH[/VARIANT], e.g. linux/arm64")
    return Platform(parts[1], parts[0], parts[2] if len(parts) == 3 else None)


def _json(data: bytes, what: str) -> dict:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadInput(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{what} is not a JSON object")
    return doc


def choose_platform(manifests: list, want: Platform, what: str) -> dict:
    """The index entry for `want`; a variant is matched only when asked for."""
    def plat(d):
        return (d.get("platform") or {}) if isinstance(d, dict) else {}
    hits = [d for d in manifests if plat(d).get("os", "linux") == want.os
            and plat(d).get("architecture") == want.architecture
            and (want.variant is None or plat(d).get("variant") == want.variant)]
    if not hits:
        have = sorted("/".join(filter(None, (plat(d).get("os"), plat(d).get("architecture"),
                                             plat(d).get("variant")))) for d in manifests)
        raise BadInput(f"{what}: no {want.os}/{want.architecture} image in its index "
                       f"(it has: {', '.join(have) or 'none'}); choose with --platform")
    return hits[0]


@dataclass(frozen=True)
class Pulled:
    layout: str
    manifest_digest: str
    bytes: int


def pull(ref: Reference, registry: Registry, layout: str, platform: Platform | None = None,
         max_bytes: int = DEFAULT_MAX_BYTES) -> Pulled:
    """Write the image at ref as an OCI layout in the (new or empty) directory `layout`."""
    registry.add_scope(f"repository:{ref.repo}:pull")
    want = platform or host_platform()
    data, media_type, digest = registry.get_manifest(ref.repo, ref.ref)
    doc = _json(data, f"{ref}: manifest")
    media_type = doc.get("mediaType") or media_type
    for _ in range(4):
        if media_type not in INDEX_TYPES:
            break
        entry = choose_platform(doc.get("manifests") or [], want, str(ref))
        if not isinstance(entry.get("digest"), str) or not DIGEST.fullmatch(entry["digest"]):
            raise BadInput(f"{ref}: index entry has no sha256 digest")
        data, media_type, digest = registry.get_manifest(ref.repo, entry["digest"])
        doc = _json(data, f"{ref}@{entry['digest']}")
        media_type = doc.get("mediaType") or entry.get("mediaType") or media_type
    if media_type not in MANIFEST_TYPES:
        raise BadInput(f"{ref}: unsupported manifest media type {media_type!r}")
    descs = [doc.get("config")] + list(doc.get("layers") or [])
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    total = 0
    for i, d in enumerate(descs):
        if not isinstance(d, dict) or not isinstance(d.get("size"), int) or d["size"] < 0 \
                or not isinstance(d.get("digest"), str) or not DIGEST.fullmatch(d["digest"]):
            raise BadInput(f"{ref}: manifest entry {i} is not a descriptor with a sha256 digest")
        total += d["size"]
        if total > max_bytes:
            raise BadInput(f"{ref}: the image is more than {max_bytes} bytes")
        final = blob_path(layout, d["digest"])
        if os.path.exists(final):
            continue
        partial = final + ".partial"
        with open(partial, "wb") as f:
            registry.get_blob(ref.repo, d["digest"], f, d["size"])
        os.rename(partial, final)
    with open(blob_path(layout, digest), "wb") as f:
        f.write(data)
    name = f"{ref.host}/{ref.repo}:{ref.tag or 'latest'}"
    entry = Descriptor(media_type, digest, len(data),
                       annotations={ANN_REF_NAME: ref.tag or "latest", ANN_CONTAINERD_NAME: name})
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [entry.to_json()]}
    with open(os.path.join(layout, "index.json"), "wb") as f:
        f.write(canonical_json(index))
    with open(os.path.join(layout, "oci-layout"), "wb") as f:
        f.write(canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
    return Pulled(layout, digest, total)

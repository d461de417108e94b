"""The OCI image layout: `oci-layout`, `index.json` and the manifest and config blobs.
Layer blobs are already in `blobs/sha256/` when this runs (written while streaming)."""
from __future__ import annotations

import os
from collections.abc import Sequence

from .config import Platform
from .oci import (ANN_CONTAINERD_NAME, ANN_CREATED, ANN_REF_NAME, LAYOUT_VERSION, MT_CONFIG,
                  MT_INDEX, MT_MANIFEST, Descriptor, canonical_json, write_json_blob)


def write_layout(layout_dir: str, *, config: dict, layers: Sequence[Descriptor], platform: Platform,
                 name: str, tag: str, created: str) -> tuple[Descriptor, Descriptor]:
    """Write config, manifest, index.json and oci-layout. Returns (manifest, config) descriptors.
    The manifest holds contents only (no name), so its digest is the same whatever the tag."""
    config_desc = write_json_blob(layout_dir, MT_CONFIG, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": config_desc.to_json(),
        "layers": [layer.to_json() for layer in layers],
        "annotations": {ANN_CREATED: created},
    }
    manifest_desc = write_json_blob(layout_dir, MT_MANIFEST, manifest)
    entry = Descriptor(
        MT_MANIFEST, manifest_desc.digest, manifest_desc.size,
        annotations={ANN_REF_NAME: tag, ANN_CONTAINERD_NAME: f"{name}:{tag}"},
        platform=platform.to_json())
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [entry.to_json()]}
    _write(os.path.join(layout_dir, "index.json"), canonical_json(index))
    _write(os.path.join(layout_dir, "oci-layout"), canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
    return manifest_desc, config_desc


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)

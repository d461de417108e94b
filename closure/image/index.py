"""A multi-platform image: single-platform OCI layouts (one per platform, each built from
its own root) merged into one layout whose index.json names one image index, as `ko` and
`docker buildx` publish them: one reference, a manifest per platform."""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence

from ..errors import BadInput
from .oci import (ANN_CONTAINERD_NAME, ANN_REF_NAME, LAYOUT_VERSION, MT_INDEX, Descriptor,
                  canonical_json, write_json_blob)


def merge_layouts(layouts: Sequence[str], out: str, *, name: str, tag: str) -> Descriptor:
    """Write the layout at `out` (a new directory): every blob of `layouts`, and an index of
    their manifests with their platforms. Returns the index's descriptor."""
    entries, seen = [], set()
    os.makedirs(os.path.join(out, "blobs", "sha256"))
    for layout in layouts:
        with open(os.path.join(layout, "index.json"), "rb") as f:
            (desc,) = json.load(f)["manifests"]
        platform = desc.get("platform") or {}
        key = (platform.get("os"), platform.get("architecture"), platform.get("variant"))
        if key in seen:
            raise BadInput(f"two images for {'/'.join(filter(None, key))}: give each platform once")
        seen.add(key)
        entries.append(Descriptor(desc["mediaType"], desc["digest"], desc["size"], platform=platform))
        src = os.path.join(layout, "blobs", "sha256")
        for blob in sorted(os.listdir(src)):
            dst = os.path.join(out, "blobs", "sha256", blob)
            if not os.path.exists(dst):
                shutil.copyfile(os.path.join(src, blob), dst)
    index = write_json_blob(out, MT_INDEX, {"schemaVersion": 2, "mediaType": MT_INDEX,
                                            "manifests": [e.to_json() for e in entries]})
    top = Descriptor(MT_INDEX, index.digest, index.size,
                     annotations={ANN_REF_NAME: tag, ANN_CONTAINERD_NAME: f"{name}:{tag}"})
    with open(os.path.join(out, "index.json"), "wb") as f:
        f.write(canonical_json({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [top.to_json()]}))
    with open(os.path.join(out, "oci-layout"), "wb") as f:
        f.write(canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
    return index


def platforms_of(path: str) -> list[str]:
    """'os/arch[/variant]' of each manifest in the image index that a local layout (dir or
    tar) names; [] when it names a single image (or is not an OCI layout)."""
    from .read import INDEX_TYPES, Store, _verified_json
    try:
        store = Store(path)
    except BadInput:
        return []
    try:
        if not store.exists("index.json"):
            return []
        top = json.loads(store.read("index.json"))
        entries = top.get("manifests") or [] if isinstance(top, dict) else []
        if len(entries) != 1 or entries[0].get("mediaType") not in INDEX_TYPES:
            return []
        nested = _verified_json(store, entries[0], "index")
        return ["/".join(filter(None, ((m.get("platform") or {}).get("os"), (m.get("platform") or {}).get("architecture"),
                                       (m.get("platform") or {}).get("variant"))))
                for m in nested.get("manifests") or [] if isinstance(m, dict)]
    except (BadInput, ValueError, AttributeError):
        return []
    finally:
        store.close()

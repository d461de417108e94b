"""One .tar that is both an OCI archive and a docker-archive: the OCI layout's files plus
the `manifest.json` that `docker load` reads (the layout `docker save` writes since
Docker 25), so skopeo, podman, docker and containerd all load the same file."""
from __future__ import annotations

import os
from collections.abc import Sequence

from ..root import Root
from .oci import Descriptor, canonical_json
from .tarlayer import LayerItem, TarStream

MANIFEST_JSON = "manifest.json"


def docker_manifest(config: Descriptor, layers: Sequence[Descriptor], repo_tags: Sequence[str]) -> bytes:
    return canonical_json([{
        "Config": f"blobs/sha256/{config.hex}",
        "RepoTags": list(repo_tags),
        "Layers": [f"blobs/sha256/{layer.hex}" for layer in layers],
    }])


def write_archive(layout_dir: str, out, *, config: Descriptor, layers: Sequence[Descriptor],
                  repo_tags: Sequence[str], mtime: int, docker: bool = True) -> None:
    """Pack the layout dir (plus manifest.json, unless docker=False: an OCI archive only)
    into the binary file `out`, sorted."""
    if docker:
        with open(os.path.join(layout_dir, MANIFEST_JSON), "wb") as f:
            f.write(docker_manifest(config, layers, repo_tags))
    root = Root(layout_dir)
    tar = TarStream(out.write, mtime)
    for dirpath, dirnames, filenames in os.walk(layout_dir):
        dirnames.sort()
        ipath = root.to_image_path(dirpath)
        if ipath != "/":
            tar.add(LayerItem(ipath, "dir", 0o755), root)
        for name in sorted(filenames):
            path = ipath.rstrip("/") + "/" + name
            tar.add(LayerItem(path, "file", 0o644, root.lstat(path).st_size, source=path), root)
    tar.close()

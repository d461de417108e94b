"""Our own image validator: everything a runtime will trust, checked from the bytes.

For an OCI layout dir or an image tar: oci-layout; index -> manifest -> config chain and
media types; every blob's size and sha256; each layer decompressed (gzip CRC and length
checked too), its sha256 equal to the config's diff_id, and its tar readable with safe
member names; and, when present, docker-archive's manifest.json agreeing with the OCI
manifest. Returns the problems found, one line each; an empty list means valid.
"""
from __future__ import annotations

import datetime
import json
import tarfile

from ..errors import BadInput
from .oci import LAYER_MEDIA_TYPES, LAYOUT_VERSION, MT_CONFIG, MT_INDEX, MT_MANIFEST, blob_rel
from .read import DIGEST, HashingReader, Store, declared_compression, decompressor, sniff

DOCKER_LAYER_TYPES = frozenset({"application/vnd.docker.image.rootfs.diff.tar.gzip",
                                "application/vnd.docker.image.rootfs.diff.tar"})


class _Validator:
    def __init__(self, src: Store):
        self.src = src
        self.problems: list[str] = []
        self._blobs: dict[str, bool] = {}       # digest -> blob checked ok
        self._diff_ids: dict[str, str] = {}     # layer digest -> uncompressed sha256

    def problem(self, msg: str) -> None:
        self.problems.append(msg)

    def run(self) -> list[str]:
        has_index = self.src.exists("index.json")
        if has_index:
            self.check_layout_file()
            self.check_index(self.json("index.json", "index.json"), "index.json")
        has_docker = self.src.exists("manifest.json")
        if has_docker:
            self.check_docker_manifest()
        if not has_index and not has_docker:
            self.problem("neither index.json (OCI) nor manifest.json (docker-archive) found")
        return self.problems

    def json(self, rel: str, what: str):
        try:
            return json.loads(self.src.read(rel))
        except BadInput as e:
            self.problem(f"{what}: {e}")
        except ValueError as e:
            self.problem(f"{what}: {rel} is not JSON: {e}")
        return None

    def check_layout_file(self) -> None:
        doc = self.json("oci-layout", "oci-layout") if self.src.exists("oci-layout") else None
        if doc is None:
            self.problem("oci-layout is missing or unreadable")
        elif not isinstance(doc, dict) or doc.get("imageLayoutVersion") != LAYOUT_VERSION:
            self.problem(f"oci-layout: imageLayoutVersion is not {LAYOUT_VERSION}")

    def descriptor_ok(self, desc, what: str, media_types) -> bool:
        if not isinstance(desc, dict):
            self.problem(f"{what}: descriptor is not an object")
            return False
        ok = True
        if desc.get("mediaType") not in media_types:
            self.problem(f"{what}: unexpected media type {desc.get('mediaType')!r}")
            ok = False
        if not isinstance(desc.get("digest"), str) or not DIGEST.fullmatch(desc["digest"]):
            self.problem(f"{what}: bad digest {desc.get('digest')!r}")
            return False
        if not isinstance(desc.get("size"), int) or desc["size"] < 0:
            self.problem(f"{what}: bad size {desc.get('size')!r}")
            return False
        return ok

    def blob_ok(self, digest: str, size: int | None, what: str) -> bool:
        """The blob exists, has `size` bytes (when given) and hashes to its digest."""
        if digest in self._blobs:
            return self._blobs[digest]
        rel = blob_rel(digest)
        have = self.src.size(rel)
        ok = have is not None
        if not ok:
            self.problem(f"{what}: blob {digest} is missing")
        else:
            if size is not None and have != size:
                self.problem(f"{what}: blob {digest} has {have} bytes, descriptor says {size}")
                ok = False
            with self.src.open(rel) as f:
                reader = HashingReader(f, rel, decoding=False)
                reader.drain()
            if reader.digest != digest:
                self.problem(f"{what}: blob content does not match its digest {digest}")
                ok = False
        self._blobs[digest] = ok
        return ok

    def check_index(self, index, what: str) -> None:
        if not isinstance(index, dict):
            return
        if index.get("schemaVersion") != 2:
            self.problem(f"{what}: schemaVersion is not 2")
        if index.get("mediaType", MT_INDEX) != MT_INDEX:
            self.problem(f"{what}: mediaType is {index.get('mediaType')!r}")
        manifests = index.get("manifests")
        if not isinstance(manifests, list) or not manifests:
            self.problem(f"{what}: no manifests")
            return
        for i, desc in enumerate(manifests):
            where = f"{what} manifests[{i}]"
            if not self.descriptor_ok(desc, where, {MT_MANIFEST, MT_INDEX}):
                continue
            if not self.blob_ok(desc["digest"], desc["size"], where):
                continue
            doc = self.json(blob_rel(desc["digest"]), where)
            if desc["mediaType"] == MT_INDEX:
                self.check_index(doc, f"index {desc['digest']}")
            else:
                self.check_manifest(doc, f"manifest {desc['digest']}")

    def check_manifest(self, manifest, what: str) -> None:
        if not isinstance(manifest, dict):
            self.problem(f"{what}: not an object")
            return
        if manifest.get("schemaVersion") != 2:
            self.problem(f"{what}: schemaVersion is not 2")
        if manifest.get("mediaType", MT_MANIFEST) != MT_MANIFEST:
            self.problem(f"{what}: mediaType is {manifest.get('mediaType')!r}")
        config_desc, layers = manifest.get("config"), manifest.get("layers")
        if not isinstance(layers, list):
            self.problem(f"{what}: layers is not a list")
            return
        config = None
        if self.descriptor_ok(config_desc, f"{what} config", {MT_CONFIG}) \
                and self.blob_ok(config_desc["digest"], config_desc["size"], f"{what} config"):
            config = self.json(blob_rel(config_desc["digest"]), f"{what} config")
        diff_ids = self.check_config(config, f"config {config_desc.get('digest') if isinstance(config_desc, dict) else '?'}")
        if diff_ids is not None and len(diff_ids) != len(layers):
            self.problem(f"{what}: {len(layers)} layers but {len(diff_ids)} diff_ids")
        for i, desc in enumerate(layers):
            where = f"{what} layers[{i}]"
            if not self.descriptor_ok(desc, where, LAYER_MEDIA_TYPES | DOCKER_LAYER_TYPES):
                continue
            diff_id = self.layer_diff_id(blob_rel(desc["digest"]), desc["mediaType"], where,
                                         desc["digest"], desc["size"])
            if diff_ids is not None and i < len(diff_ids) and diff_id and diff_id != diff_ids[i]:
                self.problem(f"{where}: uncompressed sha256 {diff_id} != diff_id {diff_ids[i]}")

    def check_config(self, config, what: str) -> list | None:
        if not isinstance(config, dict):
            if config is not None:
                self.problem(f"{what}: not an object")
            return None
        for key in ("architecture", "os"):
            if not isinstance(config.get(key), str) or not config[key]:
                self.problem(f"{what}: {key} missing")
        created = config.get("created")
        if created is not None:
            try:
                datetime.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
            except ValueError:
                self.problem(f"{what}: created is not an RFC 3339 time: {created!r}")
        env = (config.get("config") or {}).get("Env") or []
        if not isinstance(env, list) or any(not isinstance(e, str) or "=" not in e for e in env):
            self.problem(f"{what}: Env must be a list of KEY=VALUE strings")
        rootfs = config.get("rootfs")
        if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
            self.problem(f"{what}: rootfs.type is not 'layers'")
            return None
        diff_ids = rootfs.get("diff_ids")
        if not isinstance(diff_ids, list) or any(not isinstance(d, str) or not DIGEST.fullmatch(d) for d in diff_ids):
            self.problem(f"{what}: rootfs.diff_ids is not a list of sha256 digests")
            return None
        return diff_ids

    def layer_diff_id(self, rel: str, media_type: str, what: str, digest: str | None = None,
                      size: int | None = None) -> str | None:
        """Stream the layer once: blob digest, decompression, diff_id, tar member names."""
        if rel in self._diff_ids:
            return self._diff_ids[rel]
        have = self.src.size(rel)
        if have is None:
            self.problem(f"{what}: blob {rel} is missing")
            return None
        if size is not None and have != size:
            self.problem(f"{what}: {rel} has {have} bytes, descriptor says {size}")
        with self.src.open(rel) as f:
            blob = HashingReader(f, what, decoding=False)
            head = f.peek(8)[:8]
            declared = declared_compression(media_type)
            if declared is not None and declared != sniff(head):
                self.problem(f"{what}: media type {media_type} but the blob is {sniff(head)}-compressed")
            try:
                raw = HashingReader(decompressor(sniff(head), blob), what)
                self.check_tar(raw, what)
                raw.drain()
                blob.drain()
            except BadInput as e:   # corrupt compressed data, worded by HashingReader
                self.problem(f"{e}: the layer does not decompress")
                return None
            except (OSError, EOFError, tarfile.TarError, ValueError) as e:
                self.problem(f"{what}: layer does not decompress or parse: {e}")
                return None
            except Exception as e:  # zstandard.ZstdError and the like
                self.problem(f"{what}: layer does not decompress: {e}")
                return None
        if digest is not None:
            self._blobs[digest] = blob.digest == digest
            if blob.digest != digest:
                self.problem(f"{what}: blob content does not match its digest {digest}")
        self._diff_ids[rel] = raw.digest
        return raw.digest

    def check_tar(self, stream, what: str) -> None:
        seen: set[str] = set()
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for m in tar:
                name = m.name[2:] if m.name.startswith("./") else m.name
                name = name.rstrip("/")
                parts = name.split("/")
                if m.name.startswith("/") or ".." in parts:
                    self.problem(f"{what}: unsafe member name {m.name!r}")
                if m.islnk():
                    link = m.linkname[2:] if m.linkname.startswith("./") else m.linkname
                    if link.rstrip("/") not in seen:
                        self.problem(f"{what}: hard link {m.name!r} to {m.linkname!r}, not an earlier member")
                if name in seen and not m.isdir():
                    self.problem(f"{what}: duplicate member {m.name!r}")
                seen.add(name)

    def check_docker_manifest(self) -> None:
        doc = self.json("manifest.json", "manifest.json")
        if not isinstance(doc, list) or not doc:
            self.problem("manifest.json: not a non-empty list")
            return
        for i, item in enumerate(doc):
            where = f"manifest.json[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("Config"), str) \
                    or not isinstance(item.get("Layers"), list):
                self.problem(f"{where}: needs Config (string) and Layers (list)")
                continue
            tags = item.get("RepoTags") or []
            if not isinstance(tags, list) or any(not isinstance(t, str) or ":" not in t for t in tags):
                self.problem(f"{where}: RepoTags must be a list of 'name:tag'")
            config_rel = item["Config"]
            if self.src.size(config_rel) is None:
                self.problem(f"{where}: Config {config_rel} is missing")
                continue
            self.path_matches_digest(config_rel, where)
            diff_ids = self.check_config(self.json(config_rel, where), f"{where} Config")
            if diff_ids is not None and len(diff_ids) != len(item["Layers"]):
                self.problem(f"{where}: {len(item['Layers'])} layers but {len(diff_ids)} diff_ids")
            for j, layer_rel in enumerate(item["Layers"]):
                lw = f"{where} Layers[{j}]"
                self.path_matches_digest(layer_rel, lw)
                diff_id = self.layer_diff_id(layer_rel, "", lw)
                if diff_ids is not None and j < len(diff_ids) and diff_id and diff_id != diff_ids[j]:
                    self.problem(f"{lw}: uncompressed sha256 {diff_id} != diff_id {diff_ids[j]}")

    def path_matches_digest(self, rel: str, what: str) -> None:
        # Docker 25 names blobs by digest; older docker-archives use other names.
        if rel.startswith("blobs/sha256/"):
            digest = "sha256:" + rel.rsplit("/", 1)[1]
            if DIGEST.fullmatch(digest):
                self.blob_ok(digest, None, what)


def validate(path: str) -> list[str]:
    """Problems found in the image at path (OCI layout dir or image tar); [] when valid."""
    src = Store(path)
    try:
        return _Validator(src).run()
    finally:
        src.close()

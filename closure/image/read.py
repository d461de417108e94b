"""Read an existing image: an OCI layout directory, an OCI archive (a tar of a layout), a
docker-archive (as `docker save` / `podman save` write them: manifest.json, the legacy
`repositories` file, layers as `<id>/layer.tar`, `<diff_id>.tar` or `blobs/sha256/...`,
links between members), or a docker-dir (`podman save --format docker-dir`).

`open_image` picks one image (by name:tag when the file holds several) and returns its
config and its layers; `SourceImage.layer` opens one layer as a stream of uncompressed tar
bytes. Nothing is trusted: every digest that is known is checked on the bytes as they are
read (the blob's digest and size, the config's diff_id), compression is recognised from the
magic bytes rather than the media type, and JSON documents are size-capped.
"""
from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import json
import logging
import lzma
import os
import posixpath
import re
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import BadInput
from .oci import ANN_CONTAINERD_NAME, ANN_REF_NAME, MT_INDEX, MT_MANIFEST

log = logging.getLogger(__name__)

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = frozenset({MT_MANIFEST, MT_DOCKER_MANIFEST})
INDEX_TYPES = frozenset({MT_INDEX, MT_DOCKER_LIST})
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
HEX = re.compile(r"[0-9a-f]{64}")
MAX_JSON = 16 << 20          # manifests and configs are kilobytes; refuse to buffer more
# A layer may unpack to BOMB_RATIO times its blob's size, and to BOMB_FLOOR bytes whatever
# its size: beyond that it is a decompression bomb (zstd reaches 30000:1 on zeros; real
# layers rarely pass 20:1).
BOMB_RATIO = 256
BOMB_FLOOR = 64 << 20
MAX_MEMBER_LINKS = 16        # link hops between members of an image tar
READ = 1 << 20

_MAGIC = (  # (prefix, compression) as found at the start of a layer blob
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)


# -- where the image's files are: a directory or a tar ------------------------------------

class Store:
    """Files of an image by relative path ('index.json', 'blobs/sha256/...')."""

    def __init__(self, path: str):
        self.path = path
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if os.path.isdir(path):
            self._real = os.path.realpath(path)
            return
        if not os.path.isfile(path):
            raise BadInput(f"no such image: {path}")
        try:
            self._tar = tarfile.open(path, "r:*")
            for m in self._tar.getmembers():
                self._members.setdefault(_clean_rel(m.name), m)
        except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            why = (str(e).splitlines() or [type(e).__name__])[0].rstrip(":")
            raise BadInput(f"{path}: not an image (neither a directory nor a readable tar: {why})") from None

    @property
    def is_archive(self) -> bool:
        return self._tar is not None

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def _member(self, rel: str) -> tarfile.TarInfo | None:
        """The regular-file member at rel, following symlink and hard-link members inside
        the archive (podman writes `<id>/layer.tar -> ../<diff_id>.tar`)."""
        rel = _clean_rel(rel)
        for _ in range(MAX_MEMBER_LINKS):
            m = self._members.get(rel)
            if m is None:
                return None
            if m.isreg():
                return m
            if m.issym():
                rel = _clean_rel(posixpath.join(posixpath.dirname(rel), m.linkname))
            elif m.islnk():
                rel = _clean_rel(m.linkname)
            else:
                return None
        raise BadInput(f"{self.path}: member links loop at {rel}")

    def same_file(self, a: str, b: str) -> bool:
        """Do both names lead to the same file (through links in the archive or the dir)?"""
        if self._tar is None:
            try:
                return os.path.samefile(self._host(a), self._host(b))
            except OSError:
                return False
        ma = self._member(a)
        return ma is not None and ma is self._member(b)

    def size(self, rel: str) -> int | None:
        if self._tar is None:
            host = self._host(rel)
            try:
                st = os.stat(host)
            except OSError:
                return None
            if not stat.S_ISREG(st.st_mode):
                # a FIFO would block the reader forever; a directory is no file either
                raise BadInput(f"{self.path}: {rel} is not a regular file")
            real = os.path.realpath(host)
            if not real.startswith(self._real + "/"):
                raise BadInput(f"{self.path}: {rel} is a link that leads outside the image")
            return st.st_size
        m = self._member(rel)
        return None if m is None else m.size

    def exists(self, rel: str) -> bool:
        return self.size(rel) is not None

    def open(self, rel: str):
        """A binary reader (with peek) of the file at rel."""
        if self.size(rel) is None:
            raise BadInput(f"{self.path}: {rel} is missing")
        if self._tar is None:
            return open(self._host(rel), "rb")
        return self._tar.extractfile(self._member(rel))

    def read(self, rel: str, limit: int = MAX_JSON) -> bytes:
        size = self.size(rel)
        if size is None:
            raise BadInput(f"{self.path}: {rel} is missing")
        if size > limit:
            raise BadInput(f"{self.path}: {rel} is {size} bytes, more than a metadata file can be")
        with self.open(rel) as f:
            return f.read()

    def _host(self, rel: str) -> str:
        return os.path.join(self.path, _clean_rel(rel))


def _clean_rel(name: str) -> str:
    """A member name as a relative path; '..' cannot climb out of the image."""
    parts: list[str] = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return "/".join(parts)


def _json(data: bytes, what: str, want: type | None = None):
    """The JSON document in data; BadInput naming `what` when it is not JSON (a nesting
    bomb included) or, given `want`, not of that type."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadInput(f"{what} is not JSON ({e})") from None
    except RecursionError:
        raise BadInput(f"{what} is not JSON: nested too deeply") from None
    if want is not None and not isinstance(doc, want):
        raise BadInput(f"{what} is not a JSON {'object' if want is dict else 'list'}")
    return doc


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- the image -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Layer:
    index: int
    rel: str                       # where the blob is inside the image
    media_type: str                # as declared ("" when the format has none)
    digest: str | None = None      # the blob's digest as stored, checked when known
    size: int | None = None
    diff_id: str | None = None     # the uncompressed tar's digest, from the config

    @property
    def label(self) -> str:
        return f"layer {self.index + 1} ({self.digest or self.diff_id or self.rel})"


@dataclass
class SourceImage:
    path: str
    format: str                    # "oci", "oci-archive", "docker-archive", "docker-dir"
    reference: str | None          # the name:tag it was chosen by, or its only name
    names: tuple[str, ...]         # every name the chosen image carries in the file
    manifest_digest: str | None    # None for docker-archive (it has no manifest blob)
    config_digest: str             # the image ID
    config: dict
    layers: tuple[Layer, ...]
    _store: Store

    @property
    def digest(self) -> str:
        """What identifies the source: its manifest digest, else its config digest."""
        return self.manifest_digest or self.config_digest

    @property
    def compressed_size(self) -> int:
        return sum(self._store.size(layer.rel) or 0 for layer in self.layers)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "SourceImage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def layer(self, layer: Layer, max_bytes: int | None = None) -> Iterator["HashingReader"]:
        """The layer's uncompressed tar bytes (BadInput past max_bytes: a decompression
        bomb). Leaving the block normally reads the rest of the blob and checks its digest,
        size and diff_id (BadInput on any mismatch)."""
        have = self._store.size(layer.rel)
        if have is None:
            raise BadInput(f"{self.path}: {layer.label}: blob {layer.rel} is missing")
        if layer.size is not None and have != layer.size:
            raise BadInput(f"{self.path}: {layer.label}: blob has {have} bytes, the manifest says {layer.size}")
        with self._store.open(layer.rel) as raw:
            blob = HashingReader(raw, f"{self.path}: {layer.label}", decoding=False)
            buffered = io.BufferedReader(blob, READ)
            kind = sniff(buffered.peek(8)[:8])
            declared = declared_compression(layer.media_type)
            if declared not in (None, kind):
                log.info("%s: %s: media type says %s, the bytes are %s", self.path, layer.label, declared, kind)
            bomb = max(BOMB_FLOOR, BOMB_RATIO * have) if kind != "none" else None
            limit = min(x for x in (max_bytes, bomb, 1 << 62) if x is not None)
            tar = HashingReader(decompressor(kind, buffered), f"{self.path}: {layer.label}", limit=limit)
            yield tar
            tar.drain()
            blob.drain()
        if layer.digest is not None and blob.digest != layer.digest:
            raise BadInput(f"{self.path}: {layer.label}: blob content does not match its digest")
        if layer.diff_id is not None and tar.digest != layer.diff_id:
            raise BadInput(f"{self.path}: {layer.label}: uncompressed content does not match "
                           f"the config's diff_id {layer.diff_id}")


class HashingReader(io.RawIOBase):
    """A reader that hashes and counts what passes through it. With `decoding` (reading from
    a decompressor), decompression errors become BadInput naming `what`, and reading more
    than `limit` bytes is BadInput too."""

    def __init__(self, f, what: str, decoding: bool = True, limit: int | None = None):
        self._f = f
        self._what = what
        self._decoding = decoding
        self._limit = limit
        self._sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def read(self, n: int = -1) -> bytes:
        if not self._decoding:
            data = self._f.read(n)
            self._sha.update(data)
            self.size += len(data)
            return data
        try:
            data = self._f.read(n)
        except (zlib.error, gzip.BadGzipFile, EOFError, lzma.LZMAError, OSError, ValueError) as e:
            raise BadInput(f"{self._what}: corrupt compressed data ({e})") from None
        except Exception as e:
            if type(e).__name__ in ("ZstdError", "IsalError"):    # the codecs' own error types
                raise BadInput(f"{self._what}: corrupt compressed data ({e})") from None
            raise
        self._sha.update(data)
        self.size += len(data)
        if self._limit is not None and self.size > self._limit:
            raise BadInput(f"{self._what}: unpacks to more than {self._limit} bytes")
        return data

    def drain(self) -> None:
        while self.read(READ):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


def sniff(head: bytes) -> str:
    """'gzip', 'zstd', 'xz', 'bzip2' or 'none' (a plain tar) from a blob's first bytes."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return "none"


def declared_compression(media_type: str) -> str | None:
    """What a layer media type says the compression is (None: it does not say)."""
    if media_type.endswith(("+gzip", ".gzip")):
        return "gzip"
    if media_type.endswith("+zstd"):
        return "zstd"
    if media_type.endswith((".tar", ".v1.tar")):
        return "none"
    return None


def decompressor(kind: str, raw):
    """A reader of the uncompressed bytes of `raw`, compressed as sniff() named it."""
    if kind == "gzip":
        from isal import igzip
        return igzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "zstd":
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    if kind == "xz":
        return lzma.LZMAFile(raw)
    if kind == "bzip2":
        return bz2.BZ2File(raw)
    return raw


# -- choosing the image and reading its metadata --------------------------------------------

def open_image(path: str, ref: str | None = None, arch: str | None = None) -> SourceImage:
    """Open the image at path; `ref` (name:tag, or a tag) chooses one when it holds several;
    `arch` (OCI name, default the host's) chooses in a multi-platform index."""
    from .config import host_platform
    store = Store(os.path.abspath(path))
    try:
        if store.exists("index.json"):
            img = _read_oci(store, ref, arch or host_platform().architecture)
        elif store.exists("manifest.json"):
            doc = _json(store.read("manifest.json"), f"{path}: manifest.json")
            if isinstance(doc, dict):
                img = _read_docker_dir(store, doc)
            else:
                img = _read_docker_archive(store, doc, ref)
        elif store.exists("repositories"):
            img = _read_legacy(store, ref)
        else:
            raise BadInput(f"{path}: not an image: no index.json (OCI), manifest.json "
                           f"(docker-archive) or repositories file in it")
    except BaseException:
        store.close()
        raise
    return img


def _normalise_ref(ref: str) -> str:
    """'docker.io/library/x' == 'x' == 'localhost/x' (podman's prefix); tag defaults to latest."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "localhost/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
            break
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    return f"{name}:{tag}"


def _pick(path: str, candidates: list[tuple[tuple[str, ...], object]], ref: str | None):
    """Choose among (names, item) by ref (the only candidate when no ref is given).
    Returns (names, item, the name it was chosen by: as the file spells it)."""
    if not candidates:
        raise BadInput(f"{path}: holds no image")
    listed = ", ".join(sorted({n for names, _ in candidates for n in names})) or "no names"
    if ref is None:
        if len(candidates) > 1:
            raise BadInput(f"{path}: holds {len(candidates)} images ({listed}): choose one with --ref NAME:TAG")
        names, item = candidates[0]
        return names, item, names[0] if names else None
    want = _normalise_ref(ref)
    hits = [(c, n) for c in candidates for n in c[0] if _normalise_ref(n) == want]
    if not hits and ":" not in ref and "/" not in ref:   # a bare tag
        hits = [(c, n) for c in candidates for n in c[0] if _normalise_ref(n).rsplit(":", 1)[1] == ref]
    chosen = {id(c[1]): (c, n) for c, n in reversed(hits)}   # first matching name per image
    if len(chosen) == 1:
        (names, item), name = next(iter(chosen.values()))
        return names, item, name
    if not chosen:
        raise BadInput(f"{path}: no image named {ref!r} in it (it has: {listed})")
    raise BadInput(f"{path}: {ref!r} names {len(chosen)} images; give name:tag")


def _oci_names(desc: dict) -> tuple[str, ...]:
    ann = desc.get("annotations") or {}
    if not isinstance(ann, dict):
        raise BadInput(f"index.json: annotations of {desc.get('digest')!r} are not an object")
    ref_name, full = ann.get(ANN_REF_NAME), ann.get(ANN_CONTAINERD_NAME)
    ref_name, full = (v if isinstance(v, str) else None for v in (ref_name, full))
    names = []
    if full:
        names.append(full)
    if ref_name:
        # A bare tag ('v1') is completed with the containerd name's repository when known.
        if ":" not in ref_name and "/" not in ref_name and full and ":" in full:
            names.append(full.rsplit(":", 1)[0] + ":" + ref_name)
        names.append(ref_name)
    return tuple(dict.fromkeys(names))


def _blob_rel(digest: str) -> str:
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise BadInput(f"bad digest {digest!r}")
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _verified_json(store: Store, desc: dict, what: str):
    """The JSON blob a descriptor points to, after checking its size and digest."""
    if not isinstance(desc, dict):
        raise BadInput(f"{store.path}: {what}: descriptor is not an object")
    rel = _blob_rel(desc.get("digest"))
    size = desc.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
        raise BadInput(f"{store.path}: {what} {desc['digest']}: size is not a number")
    data = store.read(rel)
    if size is not None and len(data) != size:
        raise BadInput(f"{store.path}: {what} {desc['digest']}: {len(data)} bytes, descriptor says {size}")
    if _sha256(data) != desc["digest"]:
        raise BadInput(f"{store.path}: {what} {desc['digest']}: content does not match its digest")
    return _json(data, f"{store.path}: {what} {desc['digest']}", dict)


def _read_oci(store: Store, ref: str | None, arch: str) -> SourceImage:
    index = _json(store.read("index.json"), f"{store.path}: index.json")
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list):
        raise BadInput(f"{store.path}: index.json has no manifests list")
    if any(not isinstance(d, dict) for d in manifests):
        raise BadInput(f"{store.path}: index.json: a manifests entry is not a descriptor object")
    candidates = [(_oci_names(d), d) for d in manifests]
    names, desc, chosen = _pick(store.path, candidates, ref)
    depth = 0
    while desc.get("mediaType") in INDEX_TYPES:        # multi-platform: take our platform
        depth += 1
        if depth > 4:
            raise BadInput(f"{store.path}: indexes nested too deeply")
        nested = _verified_json(store, desc, "index")
        nested_list = nested.get("manifests") or []
        if not isinstance(nested_list, list):
            raise BadInput(f"{store.path}: index {desc['digest']}: manifests is not a list")
        desc = _platform_pick(store.path, nested_list, arch)
    if desc.get("mediaType") not in MANIFEST_TYPES:
        raise BadInput(f"{store.path}: unsupported manifest media type {desc.get('mediaType')!r:.80}")
    manifest = _verified_json(store, desc, "manifest")
    config_desc = manifest.get("config")
    config = _checked_config(store.path, _verified_json(store, config_desc, "config"))
    diff_ids = _diff_ids(store.path, config)
    layer_descs = manifest.get("layers")
    if not isinstance(layer_descs, list) or (diff_ids is not None and len(diff_ids) != len(layer_descs)):
        raise BadInput(f"{store.path}: manifest layers do not match the config's diff_ids")
    layers = []
    for i, d in enumerate(layer_descs):
        if not isinstance(d, dict) or not isinstance(d.get("size"), int) or isinstance(d["size"], bool):
            raise BadInput(f"{store.path}: manifest layer {i + 1} is not a descriptor")
        layers.append(Layer(i, _blob_rel(d.get("digest")), str(d.get("mediaType", "")), d["digest"],
                            d["size"], diff_ids[i] if diff_ids else None))
    return SourceImage(
        path=store.path, format="oci-archive" if store.is_archive else "oci",
        reference=chosen, names=names, manifest_digest=desc["digest"],
        config_digest=config_desc["digest"], config=config, layers=tuple(layers), _store=store)


def _platform_pick(path: str, manifests: list, arch: str) -> dict:
    for d in manifests:
        if not isinstance(d, dict) or not isinstance(d.get("platform") or {}, dict):
            raise BadInput(f"{path}: an index entry or its platform is not an object")
    ours = [d for d in manifests
            if (d.get("platform") or {}).get("architecture") == arch
            and (d.get("platform") or {}).get("os", "linux") == "linux"]
    if len(ours) == 1 or (ours and len(manifests) == 1):
        return ours[0]
    if len(manifests) == 1 and isinstance(manifests[0], dict):
        return manifests[0]
    if not ours:
        raise BadInput(f"{path}: no linux/{arch} image in its index")
    return ours[0]   # variants of one arch (v7, v8): the first, as registries order them


def _checked_config(path: str, config) -> dict:
    """The image config, its fields of the types the image spec gives them (BadInput
    otherwise), so no reader downstream meets a list where an object belongs."""
    from .config import check_run_config
    if not isinstance(config, dict):
        raise BadInput(f"{path}: the image config is not a JSON object")
    for key, want in (("architecture", str), ("os", str), ("variant", str), ("created", str),
                      ("author", str), ("history", list), ("rootfs", dict)):
        if config.get(key) is not None and not isinstance(config[key], want):
            raise BadInput(f"{path}: the image config's {key} is not a {want.__name__}")
    if any(not isinstance(h, dict) for h in config.get("history") or ()):
        raise BadInput(f"{path}: the image config's history holds a non-object")
    check_run_config(config.get("config") or {}, path)
    return config


def _diff_ids(path: str, config) -> list[str] | None:
    if not isinstance(config, dict):
        raise BadInput(f"{path}: the image config is not a JSON object")
    rootfs = config.get("rootfs")
    if rootfs is None:
        return None
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list) or any(not isinstance(d, str) or not DIGEST.fullmatch(d) for d in ids):
        raise BadInput(f"{path}: the config's rootfs.diff_ids is not a list of sha256 digests")
    return ids


def _named_digest(rel: str) -> str | None:
    """Docker names configs `<hex>.json` and blobs `blobs/sha256/<hex>`: the name is a digest."""
    base = posixpath.basename(rel)
    stem = base[:-5] if base.endswith(".json") else base
    if HEX.fullmatch(stem) and (base.endswith(".json") or rel.startswith("blobs/sha256/")):
        return "sha256:" + stem
    return None


def _read_docker_archive(store: Store, doc, ref: str | None) -> SourceImage:
    if not isinstance(doc, list) or not doc:
        raise BadInput(f"{store.path}: manifest.json is not a non-empty list")
    repos = _repositories(store)
    candidates = []
    for i, item in enumerate(doc):
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str) \
                or not isinstance(item.get("Layers"), list):
            raise BadInput(f"{store.path}: manifest.json[{i}] needs Config and Layers")
        tags = item.get("RepoTags") or []
        if not isinstance(tags, list) or any(not isinstance(t, str) for t in tags) \
                or any(not isinstance(rel, str) for rel in item["Layers"]):
            raise BadInput(f"{store.path}: manifest.json[{i}]: RepoTags and Layers must be lists of strings")
        names = tuple(tags)
        if not names and item["Layers"]:
            # Untagged in manifest.json: names from `repositories` whose top layer is ours.
            top = item["Layers"][-1]
            names = tuple(n for n, layer_id in repos.items()
                          if isinstance(top, str) and store.same_file(top, f"{layer_id}/layer.tar"))
        candidates.append((names, item))
    names, item, chosen = _pick(store.path, candidates, ref)
    data = store.read(item["Config"])
    config_digest = _sha256(data)
    named = _named_digest(item["Config"])
    if named is not None and named != config_digest:
        raise BadInput(f"{store.path}: {item['Config']}: content does not match its name")
    config = _checked_config(store.path, _json(data, f"{store.path}: {item['Config']}"))
    diff_ids = _diff_ids(store.path, config)
    if diff_ids is not None and len(diff_ids) != len(item["Layers"]):
        raise BadInput(f"{store.path}: {len(item['Layers'])} layers but {len(diff_ids)} diff_ids in the config")
    layers = tuple(
        Layer(i, rel, "", _named_digest(rel) if rel.startswith("blobs/") else None, None,
              diff_ids[i] if diff_ids else None)
        for i, rel in enumerate(item["Layers"]))
    return SourceImage(
        path=store.path, format="docker-archive", reference=chosen, names=names, manifest_digest=None,
        config_digest=config_digest, config=config, layers=layers, _store=store)


def _repositories(store: Store) -> dict[str, str]:
    """The legacy `repositories` file: {"name:tag": top layer id}."""
    if not store.exists("repositories"):
        return {}
    doc = _json(store.read("repositories"), f"{store.path}: repositories")
    out = {}
    if isinstance(doc, dict):
        for name, tags in sorted(doc.items()):
            if isinstance(tags, dict):
                for tag, layer_id in sorted(tags.items()):
                    if isinstance(layer_id, str) and HEX.fullmatch(layer_id):
                        out[f"{name}:{tag}"] = layer_id
    return out


def _read_legacy(store: Store, ref: str | None) -> SourceImage:
    """docker save before 1.10: no manifest.json; each `<id>/json` names its parent."""
    repos = _repositories(store)
    by_id: dict[str, list[str]] = {}
    for name, layer_id in repos.items():
        by_id.setdefault(layer_id, []).append(name)
    names, top, chosen = _pick(store.path, [(tuple(n), i) for i, n in sorted(by_id.items())], ref)
    chain, layer_id = [], top
    while layer_id:
        if layer_id in chain or len(chain) > 256:
            raise BadInput(f"{store.path}: layer parents loop at {layer_id}")
        chain.append(layer_id)
        meta = _json(store.read(f"{layer_id}/json"), f"{store.path}: {layer_id}/json")
        layer_id = meta.get("parent") if isinstance(meta, dict) else None
        if layer_id is not None and (not isinstance(layer_id, str) or not HEX.fullmatch(layer_id)):
            raise BadInput(f"{store.path}: bad parent id in {chain[-1]}/json")
    data = store.read(f"{top}/json")
    config = _checked_config(store.path, _json(data, f"{store.path}: {top}/json"))
    layers = tuple(Layer(i, f"{lid}/layer.tar", "") for i, lid in enumerate(reversed(chain)))
    return SourceImage(
        path=store.path, format="docker-archive", reference=chosen, names=names,
        manifest_digest=None, config_digest=_sha256(data), config=config, layers=layers,
        _store=store)


def _read_docker_dir(store: Store, manifest: dict) -> SourceImage:
    """`podman save --format docker-dir`: a registry manifest with blobs named by hex."""
    if manifest.get("schemaVersion") != 2 or not isinstance(manifest.get("config"), dict):
        raise BadInput(f"{store.path}: manifest.json is not a schema 2 image manifest")
    data = store.read(_blob_rel(manifest["config"].get("digest")).rsplit("/", 1)[1])
    config_digest = _sha256(data)
    if config_digest != manifest["config"].get("digest"):
        raise BadInput(f"{store.path}: config content does not match its digest")
    config = _checked_config(store.path, _json(data, f"{store.path}: config"))
    diff_ids = _diff_ids(store.path, config)
    descs = manifest.get("layers") or []
    if not isinstance(descs, list):
        raise BadInput(f"{store.path}: manifest.json: layers is not a list")
    if diff_ids is not None and len(diff_ids) != len(descs):
        raise BadInput(f"{store.path}: manifest layers do not match the config's diff_ids")
    layers = []
    for i, d in enumerate(descs):
        digest = d.get("digest") if isinstance(d, dict) else None
        _blob_rel(digest)
        size = d.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
            raise BadInput(f"{store.path}: manifest.json: layer {i + 1}'s size is not a number")
        layers.append(Layer(i, digest.split(":", 1)[1], str(d.get("mediaType", "")), digest,
                            size, diff_ids[i] if diff_ids else None))
    raw = store.read("manifest.json")
    return SourceImage(
        path=store.path, format="docker-dir", reference=None, names=(),
        manifest_digest=_sha256(raw), config_digest=config_digest, config=config,
        layers=tuple(layers), _store=store)

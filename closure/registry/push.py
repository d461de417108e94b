"""Push an OCI layout (a directory or a tar of one) to a registry, as crane does: every
blob is HEAD-checked first and skipped when present, mounted from another repository of the
same registry when we know one that has it, else uploaded streamed from its file; blobs go
up in parallel; manifests go last (children of an index before the index), each with its
exact media type, and the digest the registry reports must be the local one."""
from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ..errors import BadInput, JobFailed
from ..image.oci import ANN_CONTAINERD_NAME, ANN_REF_NAME
from ..image.read import DIGEST, INDEX_TYPES, MANIFEST_TYPES, Store, _blob_rel
from .client import Registry, Retryable
from .reference import Reference

log = logging.getLogger(__name__)
MAX_JSON = 4 << 20


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    rel: str


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    data: bytes


@dataclass(frozen=True)
class LocalImage:
    """What a push sends: blobs, then manifests in order (the last is the one tagged)."""
    blobs: tuple[Blob, ...]
    manifests: tuple[Manifest, ...]

    @property
    def digest(self) -> str:
        return self.manifests[-1].digest


@dataclass
class PushStats:
    uploaded: int = 0
    mounted: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, what: str, size: int = 0) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)
            self.bytes_uploaded += size

    def to_json(self) -> dict:
        return {"uploaded": self.uploaded, "mounted": self.mounted, "skipped": self.skipped,
                "bytes_uploaded": self.bytes_uploaded, "retries": self.retries}


@dataclass(frozen=True)
class PushResult:
    reference: str
    digest: str
    stats: PushStats

    def to_json(self) -> dict:
        return {"reference": self.reference, "digest": self.digest, **self.stats.to_json()}


def _descriptor(d, what: str) -> tuple[str, int, str]:
    if not isinstance(d, dict) or not isinstance(d.get("size"), int) or d["size"] < 0 \
            or not isinstance(d.get("digest"), str) or not DIGEST.fullmatch(d["digest"]):
        raise BadInput(f"{what}: not a descriptor with a sha256 digest and a size")
    return d["digest"], d["size"], str(d.get("mediaType", ""))


def _json_blob(store: Store, digest: str, size: int, what: str) -> bytes:
    if size > MAX_JSON:
        raise BadInput(f"{store.path}: {what} {digest} is {size} bytes, too big for a manifest")
    data = store.read(_blob_rel(digest), MAX_JSON)
    import hashlib
    if len(data) != size or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise BadInput(f"{store.path}: {what} {digest}: content does not match its descriptor")
    return data


def _choose(store: Store, manifests: list, tag: str | None) -> dict:
    if tag is None:
        if len(manifests) != 1:
            raise BadInput(f"{store.path}: holds {len(manifests)} images: name one (oci:DIR:TAG)")
        return manifests[0]
    for d in manifests:
        ann = (d.get("annotations") or {}) if isinstance(d, dict) else {}
        names = {ann.get(ANN_REF_NAME), ann.get(ANN_CONTAINERD_NAME),
                 (ann.get(ANN_CONTAINERD_NAME) or "").rsplit(":", 1)[-1]}
        if tag in names:
            return d
    raise BadInput(f"{store.path}: no image tagged {tag!r} in it")


def local_image(path: str, tag: str | None = None) -> LocalImage:
    """Read what to push from an OCI layout at path (dir or tar), choosing by tag."""
    store = Store(path)
    try:
        if not store.exists("index.json"):
            raise BadInput(f"{path}: not an OCI layout (no index.json): push an OCI layout or "
                           f"archive (e.g. `closure build -o x.tar`, `skopeo copy ... oci:DIR`)")
        try:
            index = json.loads(store.read("index.json"))
        except (ValueError, UnicodeDecodeError) as e:
            raise BadInput(f"{path}: index.json is not JSON ({e})") from None
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise BadInput(f"{path}: index.json has no manifests list")
        top = _choose(store, index["manifests"], tag)
        blobs: dict[str, Blob] = {}
        manifests: list[Manifest] = []
        _walk(store, top, blobs, manifests, depth=0)
        return LocalImage(tuple(blobs[d] for d in sorted(blobs)), tuple(manifests))
    finally:
        store.close()


def _walk(store: Store, desc, blobs: dict, manifests: list, depth: int) -> None:
    """Depth first: a manifest's blobs, an index's children, then the document itself."""
    digest, size, media_type = _descriptor(desc, f"{store.path}: index entry")
    if depth > 4:
        raise BadInput(f"{store.path}: indexes nested too deeply")
    data = _json_blob(store, digest, size, "manifest")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadInput(f"{store.path}: manifest {digest} is not JSON") from None
    media_type = doc.get("mediaType") or media_type if isinstance(doc, dict) else media_type
    if media_type in INDEX_TYPES:
        for child in doc.get("manifests") or []:
            _walk(store, child, blobs, manifests, depth + 1)
    elif media_type in MANIFEST_TYPES:
        for i, d in enumerate([doc.get("config")] + list(doc.get("layers") or [])):
            bd, bs, _ = _descriptor(d, f"{store.path}: manifest {digest} blob {i}")
            rel = _blob_rel(bd)
            if store.size(rel) != bs:
                raise BadInput(f"{store.path}: blob {bd} is missing or not {bs} bytes")
            blobs[bd] = Blob(bd, bs, rel)
    else:
        raise BadInput(f"{store.path}: unsupported manifest media type {media_type!r}")
    if all(m.digest != digest for m in manifests):
        manifests.append(Manifest(digest, media_type, data))


class _Opener:
    """Opens a blob of a layout dir or an uncompressed tar as its own file, so parallel
    uploads never share a file position (a TarFile's members do)."""

    def __init__(self, path: str):
        import os
        self._path = path
        self._dir = os.path.isdir(path)
        self._store = None if self._dir else Store(path)

    def spans_ok(self) -> bool:
        """Can blobs be read at their offset (a dir, or a tar that is not compressed)?"""
        if self._dir:
            return True
        with open(self._path, "rb") as f:
            from ..image.read import sniff
            return sniff(f.read(8)) == "none"

    def opener(self, blob: Blob) -> Callable[[], object]:
        import os
        if self._dir:
            return lambda: open(os.path.join(self._path, blob.rel), "rb")
        member = self._store._member(blob.rel)   # noqa: SLF001 (the member's offset in the tar)
        offset = member.offset_data

        def open_span():
            f = open(self._path, "rb")
            f.seek(offset)
            return _Bounded(f, blob.size)
        return open_span

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


class _Bounded(io.RawIOBase):
    def __init__(self, f, size: int):
        self._f, self._left = f, size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()


def push(path: str, tag: str | None, dest: Reference, registry: Registry, *, jobs: int = 4,
         mount_from: dict[str, str] | None = None,
         progress: Callable[[str, Blob], None] | None = None) -> PushResult:
    """Push the image at path (OCI layout dir or tar; `tag` chooses within it) to dest.
    `mount_from` maps a blob digest to a repository of the same registry known to hold it
    (a family pushed in one run); it is updated with what this push sent."""
    image = local_image(path, tag)
    stats = PushStats()
    registry.add_scope(f"repository:{dest.repo}:pull,push")
    sources = mount_from if mount_from is not None else {}
    for repo in sorted({sources[b.digest] for b in image.blobs if b.digest in sources} - {dest.repo}):
        registry.add_scope(f"repository:{repo}:pull")
    registry.ping()
    retried = registry.retried
    files = _Opener(path)
    try:
        jobs = jobs if files.spans_ok() else 1
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(_push_blob, registry, dest.repo, b, files.opener(b),
                                   sources.get(b.digest), stats, progress) for b in image.blobs]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            for f in futures:
                if f.done() and not f.cancelled() and f.exception() is not None:
                    raise f.exception()
    finally:
        files.close()
    for b in image.blobs:
        sources[b.digest] = dest.repo
    for i, m in enumerate(image.manifests):
        last = i == len(image.manifests) - 1
        ref = dest.ref if last else m.digest
        got = registry.put_manifest(dest.repo, ref, m.data, m.media_type)
        if got and got != m.digest:
            raise JobFailed(f"{registry.host}/{dest.repo}: the registry says the manifest is {got}, "
                            f"ours is {m.digest}")
    stats.retries = registry.retried - retried
    return PushResult(str(dest), image.digest, stats)


def _push_blob(registry: Registry, repo: str, blob: Blob, opener, source: str | None,
               stats: PushStats, progress) -> None:
    if registry.blob_exists(repo, blob.digest):
        stats.add("skipped")
        log.info("%s: %s exists", repo, blob.digest)
        return
    attempts = 1 + registry.retries
    for attempt in range(attempts):
        try:
            mounted, location = registry.start_upload(
                repo, mount=blob.digest if source and source != repo else None, source=source)
            if mounted:
                stats.add("mounted")
                return
            registry.finish_upload(location, blob.digest, blob.size, opener)
            stats.add("uploaded", blob.size)
            if progress is not None:
                progress("uploaded", blob)
            return
        except Retryable as e:
            if attempt + 1 >= attempts:
                raise JobFailed(f"{registry.host}: upload of {blob.digest}: {e} "
                                f"(gave up after {attempts} attempts)") from None
            registry.backoff(attempt, e)

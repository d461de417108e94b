"""Image names with a transport, as skopeo and podman spell them:

    oci:DIR[:TAG]             an OCI layout directory (TAG: which image in it)
    oci-archive:FILE[:REF]    a tar of an OCI layout
    docker-archive:FILE[:REF] `docker save` / `podman save` output
    docker://HOST/REPO:TAG    a registry (read and write)
    containers-storage:NAME   podman's local store (read: through `podman image save`)
    PATH                      no transport: what the path is (directory, .tar), as before

`reading` turns any of them into a local path that closure.image.read opens; `Destination`
turns an output into a local path to write plus, for docker://, a push when it is done."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import BadInput, JobFailed
from .reference import Reference, parse as parse_reference

KINDS = ("oci", "oci-archive", "docker-archive", "docker", "containers-storage")


@dataclass(frozen=True)
class Transport:
    kind: str                    # one of KINDS, or "path"
    path: str = ""               # the file or directory (local kinds)
    ref: str | None = None       # TAG / NAME:TAG inside the file; the name in containers-storage
    registry: Reference | None = None

    @property
    def local(self) -> bool:
        return self.kind in ("path", "oci", "oci-archive", "docker-archive")


@dataclass(frozen=True)
class RegistryOptions:
    creds: str | None = None     # USER:PASSWORD
    tls_verify: bool = True
    cert_dir: str | None = None
    platform: str | None = None  # OS/ARCH[/VARIANT] to pick from an index when reading
    jobs: int = 4

    def client(self, ref: Reference):
        from .auth import parse_creds
        from .client import ClientOptions, Registry
        opts = ClientOptions(tls_verify=self.tls_verify, cert_dir=self.cert_dir,
                             creds=parse_creds(self.creds) if self.creds else None)
        return Registry(ref.host, ref.api_host, opts, repo=ref.repo)


def _split_ref(rest: str) -> tuple[str, str | None]:
    """'dir:tag' -> ('dir', 'tag'); 'file.tar:name:tag' -> ('file.tar', 'name:tag'). The
    path is the longest prefix that exists, else everything before the first ':'."""
    if ":" not in rest or os.path.exists(rest):
        return rest, None
    i = len(rest)
    while (i := rest.rfind(":", 0, i)) > 0:
        if os.path.exists(rest[:i]):
            return rest[:i], rest[i + 1:] or None
    path, _, ref = rest.partition(":")
    return path, ref or None


def parse(text: str) -> Transport:
    for kind in KINDS:
        prefix = kind + ("://" if kind == "docker" else ":")
        if not text.startswith(prefix):
            continue
        rest = text[len(prefix):]
        if kind == "docker":
            return Transport("docker", registry=parse_reference(rest))
        if kind == "containers-storage":
            if not rest:
                raise BadInput("containers-storage: give an image name, e.g. containers-storage:localhost/app:1")
            return Transport(kind, ref=rest)
        path, ref = _split_ref(rest)
        if not path:
            raise BadInput(f"{text}: no path after {prefix}")
        return Transport(kind, path=path, ref=ref)
    if text.startswith("docker:") and not os.path.exists(text):
        raise BadInput(f"{text}: registry references are written docker://HOST/REPO:TAG")
    return Transport("path", path=text)


@contextlib.contextmanager
def reading(text: str, ref: str | None = None, reg: RegistryOptions = RegistryOptions(),
            tmpdir: str | None = None) -> Iterator[tuple[str, str | None]]:
    """(a local path closure.image.read can open, the ref to choose with) for as long as
    the block runs; images from registries and podman's store are fetched into a temporary
    directory that is removed at the end."""
    t = parse(text)
    if t.local:
        yield t.path, ref or t.ref
        return
    tmp = tempfile.mkdtemp(prefix="closure-pull-", dir=tmpdir)
    try:
        if t.kind == "docker":
            from .pull import parse_platform, pull
            layout = os.path.join(tmp, "image")
            pull(t.registry, reg.client(t.registry), layout,
                 parse_platform(reg.platform) if reg.platform else None)
            yield layout, None
        else:
            yield _save_from_storage(t.ref, tmp), None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save_from_storage(name: str, tmp: str) -> str:
    """podman's store -> an OCI archive (skopeo when podman is missing)."""
    out = os.path.join(tmp, "image.tar")
    if shutil.which("podman"):
        argv = ["podman", "image", "save", "--format", "oci-archive", "-o", out, name]
    elif shutil.which("skopeo"):
        argv = ["skopeo", "copy", "-q", f"containers-storage:{name}", f"oci-archive:{out}"]
    else:
        raise BadInput("containers-storage: needs podman or skopeo")
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise JobFailed(f"{argv[0]}: saving {name} took more than 600 s") from None
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["failed"])[-1]
        raise BadInput(f"containers-storage:{name}: {why}")
    return out


class Destination:
    """Where an output goes. For local transports `path` is the output itself; for
    docker:// it is an OCI layout in a temporary directory, pushed by `publish`."""

    def __init__(self, text: str, reg: RegistryOptions = RegistryOptions()):
        self.transport = parse(text)
        self._reg = reg
        self._tmp: str | None = None
        self.mount_from: dict[str, str] | None = None   # blob -> repo: a family's earlier pushes
        t = self.transport
        if t.kind == "containers-storage":
            raise BadInput("containers-storage: is read only here: write docker://, oci: or a file "
                           "(then `podman load -i FILE`)")
        self.format = {"oci": "oci", "oci-archive": "oci-archive", "docker-archive": "oci-archive",
                       "docker": "oci"}.get(t.kind)     # None: inferred from the path, as before
        self.tag = t.registry.tag if t.registry else (t.ref.rsplit(":", 1)[-1] if t.ref else None)
        self.name = f"{t.registry.host}/{t.registry.repo}" if t.registry else (
            t.ref.rsplit(":", 1)[0] if t.ref and ":" in t.ref else None)
        if t.kind == "docker":
            if t.registry.digest:
                raise BadInput(f"{text}: push to a tag, not a digest")
            self._tmp = tempfile.mkdtemp(prefix="closure-push-")
            self.path = os.path.join(self._tmp, "image.oci")
        else:
            self.path = t.path

    @property
    def pushes(self) -> bool:
        return self.transport.kind == "docker"

    def publish(self, progress=None):
        """Push what was written (docker:// only); returns the PushResult, else None."""
        if not self.pushes:
            return None
        from .push import push
        ref = self.transport.registry
        return push(self.path, self.tag, ref, self._reg.client(ref), jobs=self._reg.jobs,
                    mount_from=self.mount_from, progress=progress)

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "Destination":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

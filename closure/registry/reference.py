"""`docker://` references: HOST/REPO[:TAG][@DIGEST], completed as docker and podman do
(no host: docker.io; a one-part name on docker.io: library/NAME; no tag: latest)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BadInput

DOCKER_HUB = "docker.io"
_REPO = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HOST = re.compile(r"(?:\[[0-9a-fA-F:]+\]|[a-zA-Z0-9.-]+)(?::[0-9]+)?")


@dataclass(frozen=True)
class Reference:
    host: str             # as written, with its port ("127.0.0.1:5000"); docker.io for the hub
    repo: str             # "tools/curl"
    tag: str | None       # None when only a digest is given
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """Where the API lives (the hub's API has its own name)."""
        return "registry-1.docker.io" if self.host == DOCKER_HUB else self.host

    @property
    def ref(self) -> str:
        """What goes after /manifests/: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str) -> "Reference":
        return Reference(self.host, self.repo, tag, None)

    def __str__(self) -> str:
        s = f"{self.host}/{self.repo}"
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def parse(text: str) -> Reference:
    """'127.0.0.1:5000/tools/curl:1' (the part after docker://) -> Reference."""
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise BadInput(f"docker://{text}: {digest!r} is not a sha256 digest")
    host, sep, path = rest.partition("/")
    if not sep or not ("." in host or ":" in host or host == "localhost" or host.startswith("[")):
        host, path = DOCKER_HUB, rest
    if not _HOST.fullmatch(host):
        raise BadInput(f"docker://{text}: bad registry host {host!r}")
    tag = None
    if ":" in path:
        path, tag = path.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise BadInput(f"docker://{text}: bad tag {tag!r}")
    if host == DOCKER_HUB and "/" not in path:
        path = "library/" + path
    if not _REPO.fullmatch(path) or len(path) > 255:
        raise BadInput(f"docker://{text}: bad repository name {path!r} "
                       f"(lowercase letters, digits, '.', '_', '-', '/')")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(host, path, tag, digest)

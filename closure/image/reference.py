"""Image names and tags, checked against the docker reference grammar so that podman,
skopeo and docker all accept what we write."""
from __future__ import annotations

import posixpath
import re

from ..errors import BadInput

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or len(name) > 255:
        raise BadInput(f"invalid image name {name!r} (lowercase letters, digits, '.', '_', '-', '/')")
    return name


def check_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise BadInput(f"invalid image tag {tag!r}")
    return tag


def parse_reference(ref: str) -> tuple[str, str]:
    """'name[:tag]' -> (name, tag); the tag defaults to 'latest'. A ':' before the last
    '/' belongs to a registry port, not a tag."""
    name, tag = ref, "latest"
    colon = ref.rfind(":")
    if colon > ref.rfind("/"):
        name, tag = ref[:colon], ref[colon + 1:]
    return check_name(name), check_tag(tag)


def default_name(targets: list[str]) -> str:
    """The first target's basename, folded into a valid name ('Foo++' -> 'foo')."""
    base = posixpath.basename(targets[0]) if targets else ""
    name = re.sub(r"[^a-z0-9._-]+", "-", base.lower())
    name = re.sub(r"^[^a-z0-9]+|[^a-z0-9]+$", "", name)
    name = re.sub(r"[._-]*([._-])[._-]*", r"\1", name)
    return name if name and _NAME.fullmatch(name) else "image"

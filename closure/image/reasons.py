"""Why each file is in an image, carried by the image itself: a config label holding the
closure's reasons (gzip + base64 of compact JSON, a few KB), so `closure report IMAGE` and
`closure diff A B` can say why without the analysis that built it."""
from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
import posixpath
import re

from ..errors import BadInput
from ..model import Closure, Reason

LABEL = "org.closure.reasons"


def encode(closure: Closure) -> str:
    doc = {p: [redacted(r).to_json() for r in sorted(e.reasons, key=_key)]
           for p, e in sorted(closure.entries.items())}
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")


def decode(text: str) -> dict[str, tuple[Reason, ...]]:
    """path -> reasons, from a label value; BadInput when it is not one of ours."""
    try:
        doc = json.loads(gzip.decompress(base64.b64decode(text, validate=True)))
        return {p: tuple(Reason.from_json(r) for r in rs) for p, rs in doc.items()}
    except (ValueError, OSError, TypeError, AttributeError, EOFError) as e:
        raise BadInput(f"image label {LABEL} is not a closure reasons record: {e}") from None


def redacted(r: Reason) -> Reason:
    """The reason as an image may carry it: a probe's command line (which may hold a token:
    `curl -H 'Authorization: Bearer ...'`, `TOKEN=... app`) becomes its program's name and a
    digest of the whole line, so `inspect` shows which probe without showing what it said."""
    if r.probe is None:
        return r
    return dataclasses.replace(r, probe=probe_label(r.probe))


def probe_label(command: str) -> str:
    if command.startswith("probe "):        # already a label (a slim of a closure image)
        return command
    words = [w for w in command.split() if not _ASSIGNMENT.match(w)]
    program = posixpath.basename(words[0].strip("'\"")) if words else ""
    program = program if _SAFE.fullmatch(program) else ""
    digest = hashlib.sha256(command.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"probe {program} sha256:{digest}".replace("  ", " ")


_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SAFE = re.compile(r"[A-Za-z0-9._+-]{1,64}")


def _key(r: Reason) -> tuple:
    return tuple("" if v is None else v for v in (r.kind, r.by, r.name, r.recipe, r.probe))

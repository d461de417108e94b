"""Why each file is in an image, carried by the image itself: a config label holding the
closure's reasons (gzip + base64 of compact JSON, a few KB), so `closure report IMAGE` and
`closure diff A B` can say why without the analysis that built it."""
from __future__ import annotations

import base64
import gzip
import json

from ..errors import BadInput
from ..model import Closure, Reason

LABEL = "org.closure.reasons"


def encode(closure: Closure) -> str:
    doc = {p: [r.to_json() for r in sorted(e.reasons, key=_key)]
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


def _key(r: Reason) -> tuple:
    return tuple("" if v is None else v for v in (r.kind, r.by, r.name, r.recipe, r.probe))

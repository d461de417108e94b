"""Sizes as users write them on a command line, read as dd(1) reads them: K, M, G, T and
KiB... are powers of 1024, kB, MB, GB, TB powers of 1000; a bare number is bytes."""
from __future__ import annotations

import re

from .errors import BadInput

_UNITS = {"": 1, "b": 1}
for _i, _p in enumerate("kmgt", 1):
    _UNITS[_p] = _UNITS[_p + "ib"] = 1024 ** _i
    _UNITS[_p + "b"] = 1000 ** _i
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, what: str) -> int:
    """Bytes in text; BadInput naming `what` (the option) when it is not a size."""
    m = _SIZE.match(text)
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise BadInput(f"{what}: {text!r} is not a size (say 2000, 512K, 10MB or 1.5GiB)")
    return int(float(m.group(1)) * _UNITS[unit])

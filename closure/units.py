"""Sizes as users write them on a command line: 10MB, 1.5GiB, 512k, 2000 (bytes)."""
from __future__ import annotations

import re

from .errors import BadInput

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, what: str) -> int:
    """Bytes in text (SI units for k/M/G, binary for KiB/MiB/GiB); BadInput naming `what`."""
    m = _SIZE.match(text)
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise BadInput(f"{what}: {text!r} is not a size (say 2000, 512kB, 10MB or 1.5GiB)")
    return int(float(m.group(1)) * _UNITS[unit])

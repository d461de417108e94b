"""Where closure keeps what it may reuse between runs: ~/.cache/closure (XDG_CACHE_HOME).
Nothing there changes an image's bytes; every entry is validated before use."""
from __future__ import annotations

import os


def cache_path(*parts: str) -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "closure", *parts)

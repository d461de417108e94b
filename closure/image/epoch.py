"""Build time comes only from SOURCE_DATE_EPOCH (reproducible-builds.org), default 0."""
from __future__ import annotations

import datetime
import os
from collections.abc import Mapping

from ..errors import BadInput


def source_date_epoch(environ: Mapping[str, str] | None = None) -> int:
    """Seconds since the epoch for every timestamp we write. A malformed value is an
    error rather than a silent 0: a wrong date in a 'reproducible' image is worse than none."""
    raw = (os.environ if environ is None else environ).get("SOURCE_DATE_EPOCH", "")
    if raw == "":
        return 0
    if not raw.isascii() or not raw.isdigit():
        raise BadInput(f"SOURCE_DATE_EPOCH must be a non-negative integer, got {raw!r}")
    value = int(raw)
    if value > 253402300799:  # 9999-12-31T23:59:59Z, the end of RFC 3339
        raise BadInput(f"SOURCE_DATE_EPOCH is out of range: {raw}")
    return value


def rfc3339(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def created_time(value: str, environ: Mapping[str, str] | None = None) -> int:
    """--created: "now" (the wall clock: a new digest every build), "epoch" (the default:
    SOURCE_DATE_EPOCH, else 0, which podman and docker show as "56 years ago"), seconds
    since the epoch, or an RFC 3339 time (2026-01-31T12:00:00Z)."""
    import time
    v = value.strip()
    if v == "now":
        return int(time.time())
    if v in ("", "epoch"):
        return source_date_epoch(environ)
    if v.isascii() and v.isdigit():
        return source_date_epoch({"SOURCE_DATE_EPOCH": v})
    try:
        t = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"--created {value!r}: say now, epoch, seconds since 1970, or an RFC 3339 "
                       "time (2026-01-31T12:00:00Z)") from None
    if t.tzinfo is None:
        raise BadInput(f"--created {value!r}: an RFC 3339 time needs its zone (Z or +01:00)")
    return max(int(t.timestamp()), 0)

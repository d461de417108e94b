"""Write a report file whole or not at all (staged next to it, then renamed)."""
from __future__ import annotations

import os

from ..image import atomic


def write_file(path: str, data: bytes) -> None:
    atomic.check_destination(path, want_dir=False, force=False)
    if os.path.isdir(path):
        from ..errors import BadInput
        raise BadInput(f"output is a directory: {path}")
    with atomic.sigterm_raises(), atomic.staging(path) as stage:
        staged = os.path.join(stage, "out")
        with open(staged, "wb") as f:
            f.write(data)
        os.chmod(staged, 0o644)
        atomic.publish(staged, path, stage)

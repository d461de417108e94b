"""Write a report file whole or not at all (staged next to it, then renamed)."""
from __future__ import annotations

import os

from ..image import atomic


def check_file_destination(path: str) -> None:
    """Fail before any work when the file cannot be written there."""
    if os.path.isdir(path):
        from ..errors import BadInput
        raise BadInput(f"output is a directory, not a file: {path}")
    # a report is regenerated in place (a CI step's output): an old file is replaced
    atomic.check_destination(path, want_dir=False, force=True)
    with atomic.staging(path):      # a read-only or virtual filesystem says no only when tried
        pass


def write_file(path: str, data: bytes) -> None:
    check_file_destination(path)
    with atomic.sigterm_raises(), atomic.staging(path) as stage:
        staged = os.path.join(stage, "out")
        with open(staged, "wb") as f:
            f.write(data)
        os.chmod(staged, 0o644)
        atomic.publish(staged, path, stage)

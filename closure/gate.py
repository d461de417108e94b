"""Size gates for CI (--max-size, --max-files on build and slim): checked on the closure
before anything is written, so a job that fails them leaves no output."""
from __future__ import annotations

from .errors import JobFailed
from .model import Closure
from .report import human_size


def check_limits(closure: Closure, max_size: int | None, max_files: int | None) -> None:
    """JobFailed (exit 1) naming each limit the image would pass: its files' bytes (each
    regular file once) against max_size, its regular files against max_files."""
    over = []
    files = sum(1 for e in closure.entries.values() if e.type == "file")
    if max_size is not None and closure.total_bytes > max_size:
        over.append(f"{human_size(closure.total_bytes)} of files, more than --max-size {human_size(max_size)}")
    if max_files is not None and files > max_files:
        over.append(f"{files} files, more than --max-files {max_files}")
    if over:
        raise JobFailed("the image would hold " + "; ".join(over))

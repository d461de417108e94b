"""Outputs appear whole or not at all: everything is written inside a staging directory
next to the destination (same filesystem) and renamed into place at the end. SIGTERM is
turned into an exception while we work so the staging directory is removed on the way out;
after SIGKILL only a hidden `.NAME.closure-*` staging directory can remain, never a
half-written NAME."""
from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import stat
import tempfile
import threading

from ..errors import BadInput

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while an output was being written."""


@contextlib.contextmanager
def sigterm_raises():
    """While active (main thread, default SIGTERM disposition only), SIGTERM raises
    Terminated, so `finally` blocks run and staging directories are removed."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise Terminated("terminated")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def existing_kind(path: str) -> str | None:
    """None, 'empty-dir', 'dir', 'file' or 'other' for what is at path now."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return "dir" if os.listdir(path) else "empty-dir"
    return "file" if stat.S_ISREG(st.st_mode) else "other"


def check_destination(out_path: str, want_dir: bool, force: bool) -> None:
    if not out_path:
        raise BadInput("output path is empty")
    parent = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(parent):
        raise BadInput(f"output directory does not exist: {parent}")
    kind = existing_kind(out_path)
    if kind == "other":
        raise BadInput(f"output exists and is not a file or directory: {out_path}")
    if kind == "dir" and not force:
        raise BadInput(f"output directory exists and is not empty: {out_path} (use --force to replace it)")
    if kind == "file" and want_dir and not force:
        raise BadInput(f"output exists as a file: {out_path} (use --force to replace it)")


@contextlib.contextmanager
def staging(out_path: str):
    """A fresh directory next to out_path, removed when the block ends, however it ends."""
    out_path = os.path.abspath(out_path)
    parent, base = os.path.split(out_path.rstrip("/"))
    try:
        tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".closure-tmp", dir=parent)
    except OSError as e:
        raise BadInput(f"cannot write next to {out_path}: {e.strerror}") from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def publish(staged: str, out_path: str, stage_dir: str) -> None:
    """Move staged into out_path. Files and empty dirs are replaced by rename(2); anything
    else (force was checked by the caller) is swapped out and left in stage_dir to be removed."""
    out_path = os.path.abspath(out_path).rstrip("/") or "/"
    kind = existing_kind(out_path)
    same_type = (os.path.isdir(staged) and kind == "empty-dir") or (not os.path.isdir(staged) and kind == "file")
    if kind is None or same_type:
        os.replace(staged, out_path)
        return
    if _exchange(staged, out_path):
        return
    os.rename(out_path, os.path.join(stage_dir, "replaced"))
    os.rename(staged, out_path)

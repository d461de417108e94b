"""Outputs appear whole or not at all: everything is written inside a staging directory
next to the destination (same filesystem) and renamed into place at the end. SIGTERM is
turned into an exception while we work so the staging directory is removed on the way out;
after SIGKILL only a hidden `.NAME.closure-*` staging directory can remain, never a
half-written NAME."""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import signal
import stat
import tempfile
import threading
import time

from ..errors import BadInput, JobFailed

log = logging.getLogger(__name__)

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
    if not os.access(parent, os.W_OK | os.X_OK):
        # said now, before any analysis or probe, not by whatever tries to write first
        raise BadInput(f"cannot write in the output directory {parent}: permission denied")
    kind = existing_kind(out_path)
    if kind == "other":
        raise BadInput(f"output exists and is not a file or directory: {out_path}")
    # One rule for files and directories: what is there is replaced only when asked.
    if kind == "dir" and not force:
        raise BadInput(f"output directory exists and is not empty: {out_path} (use --force to replace it)")
    if kind == "file" and not force:
        raise BadInput(f"output exists{' as a file' if want_dir else ''}: {out_path} (use --force to replace it)")


STALE_AFTER = 60     # seconds: a younger unlocked work dir may be one still being set up


@contextlib.contextmanager
def locked_dir(parent: str, prefix: str, suffix: str):
    """A fresh directory `prefix<pid>-<random>suffix` in parent, locked (flock) while the
    block runs and removed when it ends, however it ends. After a SIGKILL the kernel drops
    the lock, so a later run can prove the directory dead (sweep_stale) and remove it."""
    tmp = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", suffix=suffix, dir=parent)
    fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield tmp
    finally:
        from .extract import _rmtree
        _rmtree(tmp)
        os.close(fd)


def sweep_stale(parent: str, prefix: str, suffix: str) -> list[str]:
    """Remove the work dirs named prefix...suffix in parent that are provably dead: older
    than STALE_AFTER and not locked (their run ended without cleaning up: SIGKILL, a power
    cut). Returns what was removed."""
    from .extract import _rmtree
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    now = time.time()
    for name in sorted(names):
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        path = os.path.join(parent, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if now - os.fstat(fd).st_mtime < STALE_AFTER:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue        # its run is alive
            _rmtree(path)
            removed.append(path)
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d stale work dir(s) left by killed runs: %s", len(removed), ", ".join(removed))
    return removed


@contextlib.contextmanager
def staging(out_path: str):
    """A fresh directory next to out_path, removed when the block ends, however it ends.
    Staging dirs of killed runs beside it are swept first. A full disk is the job failing
    (exit 1), said in one line."""
    out_path = os.path.abspath(out_path)
    parent, base = os.path.split(out_path.rstrip("/"))
    sweep_stale(parent, ".", ".closure-tmp")
    try:
        stage = locked_dir(parent, f".{base}.", ".closure-tmp")
        tmp = stage.__enter__()
    except OSError as e:
        raise BadInput(f"cannot write next to {out_path}: {e.strerror}") from None
    try:
        yield tmp
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise JobFailed(f"no space left on the device of {parent} while writing {out_path}: "
                            f"nothing was written") from None
        raise
    finally:
        stage.__exit__(None, None, None)


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
        try:
            os.replace(staged, out_path)
            return
        except OSError as e:
            # A concurrent build published a directory there since we looked: swap it out.
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
                raise
    if _exchange(staged, out_path):
        return
    os.rename(out_path, os.path.join(stage_dir, "replaced"))
    os.rename(staged, out_path)

"""Typed errors. The library raises these; only the CLI turns them into exit codes."""


class ClosureError(Exception):
    """Base error; exit_code is what the CLI returns for it."""

    exit_code = 2


class BadInput(ClosureError):
    """The user gave something unusable: a missing path, a non-ELF, a hostile tarball."""

    exit_code = 2


class NotFound(BadInput):
    pass


class SymlinkLoop(BadInput):
    pass


class NotElf(BadInput):
    pass


class JobFailed(ClosureError):
    """The job ran but did not succeed (e.g. a verify command failed)."""

    exit_code = 1


class NoRuntime(ClosureError):
    exit_code = 2


MAX_INPUT = 256 << 20   # an analysis of a whole distribution is tens of MB; more is not one


def read_input(path: str, what: str, limit: int = MAX_INPUT) -> bytes:
    """The bytes of a file the user named (a spec, a --ca-cert, a --plan); the usual ways
    of failing to read it become one BadInput line starting with `what` (which names the
    file, e.g. "spec file x.toml"). Only a regular file of at most `limit` bytes is read:
    the type is checked on a descriptor opened with O_NONBLOCK, so a FIFO never blocks and
    /dev/zero is never read."""
    import os
    import stat
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise BadInput(f"{what}: no such file") from None
    except OSError as e:
        raise BadInput(f"{what}: cannot read it ({e.strerror})") from None
    st = os.fstat(fd)
    why = ("is a directory, not a file" if stat.S_ISDIR(st.st_mode)
           else "not a regular file (a FIFO or device)" if not stat.S_ISREG(st.st_mode)
           else f"{st.st_size} bytes, more than the {limit} such a file may have" if st.st_size > limit
           else None)
    if why is not None:
        os.close(fd)
        raise BadInput(f"{what}: {why}")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as f:
        try:
            return f.read(limit + 1)[:limit]   # a file growing while read stops at the cap
        except OSError as e:
            raise BadInput(f"{what}: cannot read it ({e.strerror})") from None

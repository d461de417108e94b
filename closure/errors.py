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


def read_input(path: str, what: str) -> bytes:
    """The bytes of a file the user named (a spec, a --ca-cert, a --plan); the usual ways
    of failing to read it become one BadInput line starting with `what` (which names the
    file, e.g. "spec file x.toml")."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise BadInput(f"{what}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"{what}: is a directory, not a file") from None
    except OSError as e:
        raise BadInput(f"{what}: cannot read it ({e.strerror})") from None

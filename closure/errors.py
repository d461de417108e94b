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

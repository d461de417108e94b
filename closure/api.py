"""The Python API: `closure.build(...)` is `closure build` as a call, the same image
digest for digest (the CLI's own code path, without the printing)."""
from __future__ import annotations

import os
from collections.abc import Sequence


def build(targets: Sequence[str], output: str, **options):
    """Build an image of `targets` at `output` (an OCI layout dir, an image .tar, a rootfs,
    or docker://HOST/REPO:TAG) and return its BuildResult (digests, sizes, format).

    Options are `closure build`'s long options with '_' for '-', typed as in a spec file:
    tag="tools/curl:8", ca_cert=["corp.pem"], probe=["curl --version"], compression="zstd",
    no_recipes=True. Unknown names and wrong types raise closure.errors.BadInput; every
    failure raises a ClosureError subclass, whose exit_code the CLI would use."""
    from .cli.build import build_values
    from .spec import values
    given = values(dict(options), "closure.build()", os.getcwd())
    given["targets"] = list(targets)
    given["output"] = output
    _closure, result = build_values(given)
    return result

"""`closure check`: prove an image (rootfs, or programs) will load and link, without running it."""
from __future__ import annotations

import json
import os
from typing import List, Optional

import typer

from . import options as o
from .progress import Progress

EXAMPLES = """

Examples:

  closure check curl.tar                    # an image: OCI archive, OCI layout, docker-archive

  closure check ./rootfs                    # an unpacked root: every ELF object in it

  closure check /usr/bin/curl /usr/bin/git  # programs on this machine, as `ldd -r` would

  closure check app --root ./sysroot --json # a program inside a root; one JSON document

For each program, the libraries the loader would map (in its order, inside the image) must
all be there, every version they need (libc.so.6 GLIBC_2.34) must be defined by the library
that answers for that soname, and every undefined symbol that is not weak must be defined
by an object of that program's load order. A library no program maps (a plugin) is checked
on its own; its symbols only its host program can give are counted (--standalone lists them).

Exit status: 0 everything resolves; 1 something does not (one line each); 2 bad input.
"""


def register(app: typer.Typer) -> None:
    @app.command(help="Check that every program of an image will load and link (DT_NEEDED, symbol versions, undefined symbols)." + EXAMPLES)
    def check(
        inputs: List[str] = typer.Argument(..., metavar="IMAGE|ROOTFS|TARGET...", help="An image, a root directory, or programs (paths, or names on PATH)."),
        root: Optional[str] = typer.Option(None, "--root", help="TARGETs are inside this directory (default /)."),
        ref: Optional[str] = typer.Option(None, "--ref", metavar="NAME:TAG", help="Which image of a multi-image archive."),
        standalone: bool = typer.Option(False, "--standalone", help="Also report symbols a library no program maps leaves undefined (as `ldd -r LIB`)."),
        library_path: Optional[List[str]] = o.LibraryPathOpt,
        tmpdir: Optional[str] = typer.Option(None, "--tmpdir", metavar="DIR", help="Where to unpack an image (default: $TMPDIR)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document (schemaVersion closure.check/1)."),
    ) -> None:
        from ..check import check_image, check_root, check_targets, is_image
        from ..errors import BadInput, NotFound
        from ..root import Root

        lib_path = o.split_library_path(library_path)
        with Progress(enabled=not as_json) as progress:
            if root is not None or len(inputs) > 1 or not _is_tree_or_image(inputs[0]):
                r = Root(root or "/")
                report = check_targets(r, [_target(r, t) for t in inputs], lib_path)
            elif os.path.isdir(inputs[0]) and not is_image(inputs[0]):
                report = check_root(Root(inputs[0]), inputs[0], "rootfs", standalone=standalone,
                                    library_path=lib_path, step=progress.step)
            else:
                from .slim import split_image_ref
                path, ref = split_image_ref(inputs[0], ref)
                if tmpdir is not None and not os.path.isdir(tmpdir):
                    raise BadInput(f"--tmpdir {tmpdir}: no such directory")
                if not os.path.exists(path):
                    raise NotFound(f"{path}: no such file or directory")
                report = check_image(path, ref, tmpdir=tmpdir, standalone=standalone,
                                     library_path=lib_path, step=progress.step)
        if as_json:
            typer.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
        else:
            for line in report.lines():
                typer.echo(line)
            typer.echo(report.summary(), err=True)
        if not report.ok:
            raise typer.Exit(1)


def _is_tree_or_image(arg: str) -> bool:
    """A directory, or a file that is not an ELF (an image archive); a name without a
    slash that is not a file here is a program on PATH."""
    from ..check import is_image
    if os.path.isdir(arg):
        return True
    return os.path.isfile(arg) and is_image(arg)


def _target(root, name: str) -> str:
    """A TARGET as an image path in root: a name on the root's PATH, or a path (relative
    ones against the cwd, on the host only)."""
    import posixpath
    import stat

    from ..errors import BadInput, NotFound
    from ..model import DEFAULT_PATH
    from ..root import normpath

    if "/" not in name:
        for d in DEFAULT_PATH.split(":"):
            if root.is_file(posixpath.join(d, name)):
                return posixpath.join(d, name)
        raise NotFound(f"{name}: not found on PATH in root {root.path}")
    if not name.startswith("/"):
        if root.path != "/":
            raise BadInput(f"{name}: give an absolute path inside the root")
        name = os.path.abspath(name)
    r = root.try_resolve(normpath(name))
    if r is None:
        raise NotFound(f"{name}: no such file")
    if not stat.S_ISREG(root.lstat(r.path).st_mode):
        raise BadInput(f"{name}: not a regular file")
    return normpath(name)

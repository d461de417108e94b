"""Options of the audit commands (sbom, report, diff, inspect) for reading their input:
an image, a rootfs, an analysis, or TARGET programs analysed in a root."""
from __future__ import annotations

from typing import List, Optional

import typer

from . import options as o

RefOpt = typer.Option(None, "--ref", metavar="NAME:TAG", help="Which image, when the archive holds several.")
NoRecordsOpt = typer.Option(False, "--no-package-records", help="For TARGETs: leave out the /var/lib/dpkg/status.d records and copyright files a build adds.")


def target_options(root: str, library_path: Optional[List[str]], no_dlopen_scan: bool,
                   no_recipes: bool, recipe_dirs: Optional[List[str]], no_package_records: bool):
    from ..audit.load import TargetOptions
    return TargetOptions(root=root, library_path=o.split_library_path(library_path),
                         dlopen_scan=not no_dlopen_scan, recipes=not no_recipes,
                         recipe_dirs=tuple(recipe_dirs or ()), package_records=not no_package_records)


def warn(t) -> None:
    for w in t.warnings:
        typer.echo(f"closure: warning: {w}", err=True)

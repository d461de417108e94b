"""Options of the audit commands (sbom, report, diff, inspect) for reading their input:
an image, a rootfs, an analysis, or TARGET programs analysed in a root."""
from __future__ import annotations

from typing import List, Optional

import typer

from . import options as o

RefOpt = typer.Option(None, "--ref", metavar="NAME:TAG", help="Which image, when the archive holds several.")

# How to analyse TARGETs, in --help order: (parameter, type, option).
_TARGET_PARAMS = (
    ("root", str, o.RootOpt),
    ("library_path", Optional[List[str]], o.LibraryPathOpt),
    ("no_dlopen_scan", bool, o.NoDlopenScanOpt),
    ("no_recipes", bool, o.NoRecipesOpt),
    ("recipe_dirs", Optional[List[str]], o.RecipesDirOpt),
    ("no_package_records", bool, typer.Option(
        False, "--no-package-records",
        help="For TARGETs: leave out the package records (dpkg status.d and copyright files, apk's installed db) a build adds.")),
)


def _target_options(root, library_path, no_dlopen_scan, no_recipes, recipe_dirs, no_package_records):
    from ..audit.load import TargetOptions
    return TargetOptions(root=root, library_path=o.split_library_path(library_path),
                         dlopen_scan=not no_dlopen_scan, recipes=not no_recipes,
                         recipe_dirs=tuple(recipe_dirs or ()), package_records=not no_package_records)


# Give a command the options that say how to analyse TARGETs (--root, --library-path,
# --no-dlopen-scan, --no-recipes, --recipes, --no-package-records), as one TargetOptions
# in its `targets` parameter.
target_options = o.grouped_options(_TARGET_PARAMS, "targets", _target_options)


def load(source: list[str], **kw):
    """closure.audit.load.load, printing what analysing TARGETs warned about."""
    from ..audit.load import load as load_inventory
    inv = load_inventory(list(source), **kw)
    for w in inv.warnings:
        typer.echo(f"closure: warning: {w}", err=True)
    return inv

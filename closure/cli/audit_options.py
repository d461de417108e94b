"""Options of the audit commands (sbom, report, diff, inspect) for reading their input:
an image, a rootfs, an analysis, or TARGET programs analysed in a root."""
from __future__ import annotations

import functools
import inspect
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
        help="For TARGETs: leave out the /var/lib/dpkg/status.d records and copyright files a build adds.")),
)


def target_options(command):
    """Give a command the options that say how to analyse TARGETs (--root, --library-path,
    --no-dlopen-scan, --no-recipes, --recipes, --no-package-records); it receives them as
    one TargetOptions, its `targets` parameter. Typer builds the command line from the
    wrapper's signature: the command's own parameters, then those options."""
    own = [p for p in inspect.signature(command).parameters.values() if p.name != "targets"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=kind)
             for name, kind, opt in _TARGET_PARAMS]

    @functools.wraps(command)
    def wrapper(**kw):
        from ..audit.load import TargetOptions
        t = TargetOptions(root=kw.pop("root"), library_path=o.split_library_path(kw.pop("library_path")),
                          dlopen_scan=not kw.pop("no_dlopen_scan"), recipes=not kw.pop("no_recipes"),
                          recipe_dirs=tuple(kw.pop("recipe_dirs") or ()),
                          package_records=not kw.pop("no_package_records"))
        return command(**kw, targets=t)

    # Own annotations stay strings (this package uses postponed annotations): typer
    # resolves them in the command's module, found through __wrapped__.
    wrapper.__signature__ = inspect.Signature(own + added)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
    return wrapper


def load(source: list[str], **kw):
    """closure.audit.load.load, printing what analysing TARGETs warned about."""
    from ..audit.load import load as load_inventory
    inv = load_inventory(list(source), **kw)
    for w in inv.warnings:
        typer.echo(f"closure: warning: {w}", err=True)
    return inv

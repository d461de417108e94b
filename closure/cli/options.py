"""Options shared by several commands, declared once."""
from __future__ import annotations

from typing import Optional

import typer

RootOpt = typer.Option("/", "--root", help="Analyse inside this directory (an unpacked image, a sysroot).")
LibraryPathOpt = typer.Option(None, "--library-path", help="Extra library dirs, as LD_LIBRARY_PATH would add (repeatable).")
NoDlopenScanOpt = typer.Option(False, "--no-dlopen-scan", help="Do not add libraries named in strings of objects that import dlopen.")
NoRecipesOpt = typer.Option(False, "--no-recipes", help="Only the ELF closure: no runtime files from recipes.")
RecipesDirOpt = typer.Option(None, "--recipes", help="A directory of extra recipes (override built-ins by name; repeatable).")


def split_library_path(values: Optional[list[str]]) -> tuple[str, ...]:
    out: list[str] = []
    for v in values or ():
        out.extend(p for p in v.split(":") if p)
    return tuple(out)

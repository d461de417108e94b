"""Options shared by several commands, declared once."""
from __future__ import annotations

import functools
import inspect
from typing import Optional

import typer

RootOpt = typer.Option("/", "--root", help="Analyse inside this directory (an unpacked image, a sysroot).")
LibraryPathOpt = typer.Option(None, "--library-path", help="Extra library dirs, as LD_LIBRARY_PATH would add (repeatable).")
NoDlopenScanOpt = typer.Option(False, "--no-dlopen-scan", help="Do not add libraries named in strings of objects that import dlopen.")
NoRecipesOpt = typer.Option(False, "--no-recipes", help="Only the ELF closure: no runtime files from recipes.")
RecipesDirOpt = typer.Option(None, "--recipes", help="A directory of extra recipes (override built-ins by name; repeatable).")
# CI gates (gate.check_limits), on build and slim.
MaxSizeOpt = typer.Option(None, "--max-size", metavar="SIZE", help="Fail (exit 1, nothing written) when the image's files would take more than SIZE (100M, 50MB).")
MaxFilesOpt = typer.Option(None, "--max-files", min=0, metavar="N", help="Fail (exit 1, nothing written) when the image would hold more than N files.")


def split_library_path(values: Optional[list[str]]) -> tuple[str, ...]:
    out: list[str] = []
    for v in values or ():
        out.extend(p for p in v.split(":") if p)
    return tuple(out)


def grouped_options(params, name: str, make):
    """A decorator giving a command the options `params` ((parameter, type, typer.Option),
    in --help order); the command receives make(**their values) as its parameter `name`.
    Typer builds the command line from the wrapper's signature: the command's own
    parameters, then these."""
    def decorate(command):
        own = [p for p in inspect.signature(command).parameters.values() if p.name != name]
        added = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=kind)
                 for n, kind, opt in params]

        @functools.wraps(command)
        def wrapper(**kw):
            values = {n: kw.pop(n) for n, _, _ in params}
            return command(**kw, **{name: make(**values)})

        # Own annotations stay strings (postponed annotations): typer resolves them in the
        # command's module, found through __wrapped__.
        wrapper.__signature__ = inspect.Signature(own + added)
        wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
        return wrapper
    return decorate

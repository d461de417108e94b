"""`closure recipes list|show`: the recipes a build would use, built-in and user."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from . import options as o

EXAMPLES_LIST = """
Examples:

  closure recipes list

  closure recipes list --recipes ./my-recipes --json
"""
EXAMPLES_SHOW = """
Examples:

  closure recipes show openssl

  closure recipes show glibc --recipes ./my-recipes   # a user recipe overriding the built-in
"""


def register(app: typer.Typer) -> None:
    sub = typer.Typer(name="recipes", no_args_is_help=True,
                      help="List and show the recipes: runtime files programs need beyond their libraries.")
    app.add_typer(sub, name="recipes")

    @sub.command("list", help="List every recipe: name, where it comes from, what triggers it." + EXAMPLES_LIST)
    def list_(
        recipe_dirs: Optional[List[str]] = o.RecipesDirOpt,
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ) -> None:
        rs, builtin = _load(recipe_dirs)
        if as_json:
            doc = {"recipes": [_summary(r, builtin) for r in rs]}
            typer.echo(json.dumps(doc, indent=2, sort_keys=True))
            return
        rows = [(r.name, _origin(r, builtin), _trigger_text(r)) for r in rs]
        w0 = max((len(r[0]) for r in rows), default=4)
        w1 = max((len(r[1]) for r in rows), default=6)
        typer.echo(f"{'NAME':<{w0}}  {'SOURCE':<{w1}}  TRIGGER")
        for name, origin, trig in rows:
            typer.echo(f"{name:<{w0}}  {origin:<{w1}}  {trig}")

    @sub.command("show", help="Show one recipe: its file, what it overrides, and its text." + EXAMPLES_SHOW)
    def show(
        name: str = typer.Argument(..., help="Recipe name (its file name without .toml)."),
        recipe_dirs: Optional[List[str]] = o.RecipesDirOpt,
        as_json: bool = typer.Option(False, "--json", help="Print the parsed recipe as JSON."),
    ) -> None:
        rs, builtin = _load(recipe_dirs)
        r = rs.get(name)
        rs.check()   # template syntax and missing templates are input errors (exit 2)
        if as_json:
            doc = r.to_json()
            doc["overrides"] = builtin[name] if not r.builtin and name in builtin else None
            typer.echo(json.dumps(doc, indent=2, sort_keys=True))
            return
        typer.echo(f"# recipe {r.name}: {r.description}")
        typer.echo(f"# from {r.source}")
        if not r.builtin and name in builtin:
            typer.echo(f"# overrides the built-in {builtin[name]}")
        typer.echo(Path(r.source).read_text(encoding="utf-8").rstrip("\n"))


def _load(recipe_dirs):
    """The recipes a build would use, and the built-in recipe files by name (to say which
    user recipe overrides one)."""
    from ..recipes import RecipeSet
    from ..recipes.loader import builtin_dir
    rs = RecipeSet.load(tuple(recipe_dirs or ()))
    return rs, {p.stem: str(p) for p in builtin_dir().glob("*.toml")}


def _origin(r, builtin) -> str:
    if r.builtin:
        return "built-in"
    return f"{r.source} (overrides built-in)" if r.name in builtin else r.source


def _trigger_text(r) -> str:
    t = r.trigger
    parts = []
    for key, label in (("sonames", "soname"), ("paths", "path"), ("programs", "program"),
                       ("interpreters", "interpreter")):
        vals = getattr(t, key)
        if vals:
            parts.append(f"{label} " + ",".join(vals))
    if t.always:
        parts.append("always")
    return "; ".join(parts) or "(never)"


def _summary(r, builtin) -> dict:
    return {"name": r.name, "source": r.source, "builtin": r.builtin,
            "overrides": builtin[r.name] if not r.builtin and r.name in builtin else None,
            "description": r.description, "trigger": r.trigger.to_json()}

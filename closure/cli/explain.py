"""`closure explain TARGET PATH`: the chain of reasons that put PATH in the closure."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

from . import options as o
from . import recipe_options as ro

EXAMPLES = """

Examples:

  closure explain /usr/bin/curl /etc/ssl/certs/ca-certificates.crt

  closure explain curl /lib/x86_64-linux-gnu/libssl.so.3 --json

  closure explain curl libssl.so.3            # a soname or file name will do

  closure analyze curl --json > plan.json && closure explain curl /etc/passwd --plan plan.json
"""


def register(app: typer.Typer) -> None:
    @app.command(help="Show why PATH is in TARGET's closure: each step from the target down "
                      "(needed library, recipe, link...). Exit 1 when PATH is not in it." + EXAMPLES)
    @ro.with_recipe_options
    def explain(
        target: str = typer.Argument(..., help="The program (path, or name on the root's PATH)."),
        path: str = typer.Argument(..., help="The image path to explain, or a soname / file name in the closure."),
        plan: Optional[str] = typer.Option(None, "--plan", metavar="JSON",
                                           help="Read the closure from `closure analyze --json` output instead of computing it."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
        root: str = o.RootOpt,
        library_path: Optional[List[str]] = o.LibraryPathOpt,
        no_dlopen_scan: bool = o.NoDlopenScanOpt,
        no_recipes: bool = o.NoRecipesOpt,
        recipe_dirs: Optional[List[str]] = o.RecipesDirOpt,
        recipe_options: ro.RecipeOptions = None,
    ) -> None:
        from ..errors import BadInput
        from ..explain import explain as explain_path

        if not path.strip():
            raise BadInput("PATH is empty: give the image path to explain")
        if plan is not None:
            from ..audit.inventory import read_analysis
            _, closure = read_analysis(plan, f"--plan {plan}")
        else:
            from ..collect import Options, collect
            from ..root import Root
            rvars = recipe_options.vars()
            opts = Options(root=Root(root), library_path=o.split_library_path(library_path),
                           dlopen_scan=not no_dlopen_scan, recipes=not no_recipes,
                           recipe_dirs=tuple(recipe_dirs or ()), recipe_vars=rvars)
            closure = collect([target], opts)
        result = explain_path(closure, target if plan is not None else closure.targets[0], path)
        if result is None:
            if as_json:
                typer.echo(json.dumps({"target": target, "path": path, "in_closure": False}, indent=2))
            typer.echo(f"closure: {path} is not in the closure of {target}", err=True)
            raise typer.Exit(1)
        if as_json:
            doc = {"in_closure": True, **result.to_json()}
            typer.echo(json.dumps(doc, indent=2, sort_keys=True))
            return
        for line in result.lines():
            typer.echo(line)
        if not result.from_target:
            typer.echo(f"({path} is in the closure, but not through {result.target})")

"""`closure analyze`: every file a program needs, its size and why."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

from . import options as o
from . import recipe_options as ro

EXAMPLES = """

Examples:

  closure analyze /usr/bin/curl              # table: path, size, why

  closure analyze curl --json                # the stable JSON contract

  closure analyze /usr/bin/curl --tree       # dependency tree, like lddtree

  closure analyze app --root ./rootfs --strict   # inside an unpacked image; missing libs fail

  closure analyze /usr/bin/curl --by-package # files grouped by the dpkg/apk package owning them
"""


def register(app: typer.Typer) -> None:
    @app.command(help="Compute the closure of TARGETs and show every file with the reason it is in." + EXAMPLES)
    @ro.with_recipe_options
    def analyze(
        targets: List[str] = typer.Argument(..., help="Programs or scripts (paths, or names on the root's PATH)."),
        root: str = o.RootOpt,
        as_json: bool = typer.Option(False, "--json", help="Print the analysis as one JSON document."),
        as_tree: bool = typer.Option(False, "--tree", help="Print the dependency tree like lddtree."),
        strict: bool = typer.Option(False, "--strict", help="Exit 1 when a DT_NEEDED library cannot be found, or a target lies inside another root analysed without --root."),
        library_path: Optional[List[str]] = o.LibraryPathOpt,
        no_dlopen_scan: bool = o.NoDlopenScanOpt,
        no_recipes: bool = o.NoRecipesOpt,
        recipe_dirs: Optional[List[str]] = o.RecipesDirOpt,
        show_dirs: bool = typer.Option(False, "--dirs", help="Also list directories in the table."),
        by_package: bool = typer.Option(False, "--by-package", help="Group files by the package (dpkg, apk) that owns them, with versions; --json adds a \"packages\" section."),
        user: Optional[str] = typer.Option(None, "--user", help="The user the image runs as (recipes make its passwd entry and HOME)."),
        package_records: bool = typer.Option(False, "--package-records", help="Also list the package records `closure build` adds for scanners (dpkg status.d, or apk's installed db)."),
        recipe_options: ro.RecipeOptions = None,
    ) -> None:
        from ..collect import Options, collect
        from ..root import Root

        opts = Options(root=Root(root), library_path=o.split_library_path(library_path),
                       dlopen_scan=not no_dlopen_scan, recipes=not no_recipes,
                       recipe_dirs=tuple(recipe_dirs or ()),
                       recipe_vars=recipe_options.vars(user),
                       package_records=package_records)
        closure = collect(list(targets), opts)
        for w in closure.warnings:
            typer.echo(f"closure: warning: {w}", err=True)
        grouping = inventory = None
        if by_package:
            from ..audit.bypackage import group
            from ..audit.inventory import from_closure
            inventory = from_closure(closure, opts.root, hashes=False)
            grouping = group(inventory)
        if as_json:
            doc = closure.to_json()
            if grouping is not None:
                doc["packages"] = grouping.to_json(inventory)
            typer.echo(json.dumps(doc, indent=2, sort_keys=False))
        elif grouping is not None:
            from ..audit.bypackage import table as package_table
            typer.echo(package_table(grouping))
        elif as_tree:
            from ..elf.ldso import Loader
            from ..elf.reader import is_elf
            from ..report import tree
            loader = Loader(opts.root, opts.library_path)
            for t in closure.targets:   # each a regular file: an ELF program or a script
                if is_elf(opts.root, opts.root.resolve(t).path):
                    typer.echo(tree(loader.load(t)))
                else:
                    typer.echo(f"{t} (script)")
        else:
            from ..report import table
            typer.echo(table(closure, show_dirs))
        if strict and (closure.missing or closure.foreign_root):
            raise typer.Exit(1)

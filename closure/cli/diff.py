"""`closure diff`: what changed between two images or two analyses."""
from __future__ import annotations

import json
from typing import Optional

import typer

from . import audit_options as ao
from . import registry_options as rego

EXAMPLES = """

Examples:

  closure diff curl.oci curl-git.oci            # files added/removed/changed, packages

  closure diff old.tar new.tar --json           # one JSON document

  closure analyze curl --json --by-package > a.json; ...; closure diff a.json b.json

  closure diff a.oci b.oci --fail-on growth=10% --fail-on added-packages   # a CI gate

Exit status as diff(1): 0 the same, 1 different (or, with --fail-on, a condition met),
2 trouble (bad input).
"""


def register(app: typer.Typer) -> None:
    @app.command(help="Show what changed between two images (any supported format), rootfs directories or analysis JSON files." + EXAMPLES)
    @rego.source_options
    def diff(
        a: str = typer.Argument(..., metavar="A", help="The old image, rootfs or analysis JSON."),
        b: str = typer.Argument(..., metavar="B", help="The new one."),
        as_json: bool = typer.Option(False, "--json", help="Print the differences as one JSON document."),
        show_dirs: bool = typer.Option(False, "--dirs", help="Also list directories."),
        fail_on: list[str] = typer.Option([], "--fail-on", metavar="COND",
                                          help="Exit 1 only when COND holds (repeatable): any, added-files, "
                                               "removed-files, added-packages, growth=N% or growth=SIZE (10MB)."),
        ref: Optional[str] = ao.RefOpt,
        registry=None,
    ) -> None:
        from ..audit.diff import diff as compute, text, tripped
        from ..audit.load import check, load
        allow = ("image", "rootfs", "analysis")
        check([b], allow)             # a bad B fails before A is read
        d = compute(load([a], ref=ref, allow=allow, registry=registry), load([b], ref=ref, allow=allow, registry=registry))
        hits = tripped(d, tuple(fail_on) or ("any",))   # checked before printing: bad COND is exit 2
        if as_json:
            typer.echo(json.dumps(d.to_json(), indent=2))
        else:
            typer.echo(text(d, show_dirs))
        if hits:
            if fail_on:
                for why in hits:
                    typer.echo(f"closure: diff: {why}", err=True)
            raise typer.Exit(1)

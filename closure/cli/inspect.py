"""`closure inspect`: config, layers, sizes and the biggest directories of an image."""
from __future__ import annotations

import json
from typing import Optional

import typer

from . import audit_options as ao
from . import registry_options as rego

EXAMPLES = """

Examples:

  closure inspect curl.oci                 # config, layers, history, top directories

  closure inspect app.tar --ref app:1.2 --json
"""


def register(app: typer.Typer) -> None:
    @app.command(help="Show an image's config, layers (sizes, history, bytes hidden by later layers) and its biggest directories." + EXAMPLES)
    @rego.source_options
    def inspect(
        image: str = typer.Argument(..., metavar="IMAGE", help="An OCI layout or archive, or a docker-archive."),
        as_json: bool = typer.Option(False, "--json", help="Print everything as one JSON document."),
        ref: Optional[str] = ao.RefOpt,
        registry=None,
    ) -> None:
        from ..audit.inspect import facts, text
        from ..audit.load import load
        from ..image.index import platforms_of
        from ..registry.transport import parse
        f = facts(load([image], ref=ref, registry=registry, hashes=False, allow=("image",)))
        t = parse(image)
        platforms = platforms_of(t.path) if t.local else []
        if platforms:      # a multi-platform index: the facts are of the host's platform
            f["platforms"] = platforms
        typer.echo(json.dumps(f, indent=2) if as_json else
                   (f"platforms  {', '.join(platforms)} (shown: this machine's)\n" if platforms else "") + text(f))

"""`closure push`: an image (OCI layout or archive, any transport) to a registry."""
from __future__ import annotations

import json
from typing import Optional

import typer

from . import registry_options as ro

EXAMPLES = """

Examples:

  closure push curl.oci docker://registry.example.com/tools/curl:8

  closure push oci:build/out:v2 docker://127.0.0.1:5000/app:v2 --tls-verify=false

  closure push img.tar docker://ghcr.io/me/app:1 --creds me:$TOKEN --json

Blobs the registry has are not sent again (HEAD first); blobs go up in parallel, streamed
from disk; the manifest goes last. The digest printed is the local manifest's, and the
registry must agree on it. Exit status: 0 pushed; 1 the registry failed (after retries);
2 bad input (no such image, wrong credentials, TLS refused).
"""


def register(app: typer.Typer) -> None:
    @app.command(help="Push an image to a registry (docker://HOST/REPO:TAG)." + EXAMPLES)
    @ro.registry_options
    def push(
        image: str = typer.Argument(..., help="OCI layout dir, OCI archive (.tar), or oci:DIR:TAG, oci-archive:FILE."),
        destination: str = typer.Argument(..., help="docker://HOST/REPO[:TAG]"),
        jobs: int = typer.Option(4, "--jobs", "-j", min=1, max=32, help="Blobs sent at once."),
        digestfile: Optional[str] = typer.Option(None, "--digestfile", metavar="FILE", help="Write the pushed digest to FILE."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON document."),
        registry=None,
    ) -> None:
        from dataclasses import replace

        from ..errors import BadInput
        from ..report import human_size
        from ..registry.push import push as run_push
        from ..registry.transport import parse
        from .progress import Progress

        src = parse(image)
        if not src.local:
            raise BadInput(f"{image}: push reads a local image (a layout dir, an archive, oci:, oci-archive:)")
        dest = parse(destination)
        if dest.kind != "docker":
            raise BadInput(f"{destination}: push writes to a registry: docker://HOST/REPO:TAG")
        if dest.registry.digest:
            raise BadInput(f"{destination}: push to a tag, not a digest")
        reg = replace(registry, jobs=jobs)
        with Progress(enabled=not as_json) as progress:
            progress.step(f"pushing {image} to {destination}")
            result = run_push(src.path, src.ref, dest.registry, reg.client(dest.registry), jobs=jobs)
        if digestfile:
            from ..image.atomic import staging, publish
            import os
            with staging(digestfile) as stage:
                tmp = os.path.join(stage, "digest")
                with open(tmp, "w") as f:
                    f.write(result.digest)
                publish(tmp, digestfile, stage)
        if as_json:
            typer.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
        else:
            s = result.stats
            typer.echo(f"closure: pushed {result.reference}\n"
                       f"  digest     {result.digest}\n"
                       f"  blobs      {s.uploaded} uploaded ({human_size(s.bytes_uploaded)}), "
                       f"{s.mounted} mounted, {s.skipped} already there")

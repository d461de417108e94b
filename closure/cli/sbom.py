"""`closure sbom`: an SPDX or CycloneDX SBOM of exactly what an image holds."""
from __future__ import annotations

import sys
from typing import List, Optional

import typer

from . import audit_options as ao
from . import options as o

EXAMPLES = """

Examples:

  closure sbom curl.oci --format spdx-json -o curl.spdx.json     # from the image alone

  closure sbom curl.tar --format cyclonedx-json                   # an OCI/docker archive

  closure sbom /usr/bin/curl --format spdx-json                   # what a build would hold

Packages come from the image's /var/lib/dpkg/status.d records (closure writes them),
a dpkg status database, or Alpine's apk database; licenses from
/usr/share/doc/PKG/copyright. Every regular file is listed with its SHA-256.
"""


def register(app: typer.Typer) -> None:
    @app.command(help="Write an SBOM (SPDX 2.3 or CycloneDX 1.5 JSON) of an image or of TARGETs." + EXAMPLES)
    def sbom(
        source: List[str] = typer.Argument(..., metavar="IMAGE|TARGET...", help="An image (OCI layout or archive, docker-archive), a rootfs directory, or programs."),
        fmt: str = typer.Option("spdx-json", "--format", help="spdx-json | cyclonedx-json."),
        output: Optional[str] = typer.Option(None, "--output", "-o", help="Write here (default: stdout)."),
        ref: Optional[str] = ao.RefOpt,
        root: str = o.RootOpt,
        library_path: Optional[List[str]] = o.LibraryPathOpt,
        no_dlopen_scan: bool = o.NoDlopenScanOpt,
        no_recipes: bool = o.NoRecipesOpt,
        recipe_dirs: Optional[List[str]] = o.RecipesDirOpt,
        no_package_records: bool = ao.NoRecordsOpt,
    ) -> None:
        from ..audit import sbom as sb
        from ..audit.load import load
        from ..errors import BadInput
        if fmt not in sb.FORMATS:
            raise BadInput(f"unknown --format {fmt!r} (choose from {', '.join(sb.FORMATS)})")
        if output:
            from ..audit.output import check_file_destination
            check_file_destination(output)
        t = ao.target_options(root, library_path, no_dlopen_scan, no_recipes, recipe_dirs, no_package_records)
        inv = load(list(source), ref=ref, targets=t, allow=("image", "rootfs", "target"))
        ao.warn(t)
        data = sb.render(inv, fmt)
        if output:
            from ..audit.output import write_file
            write_file(output, data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()

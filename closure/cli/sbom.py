"""`closure sbom`: an SPDX or CycloneDX SBOM of exactly what an image holds."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, List, Optional

import typer

from . import audit_options as ao
from . import registry_options as rego

if TYPE_CHECKING:
    from ..audit.load import TargetOptions

EXAMPLES = """

Examples:

  closure sbom curl.oci --format spdx-json -o curl.spdx.json     # from the image alone

  closure sbom curl.tar --format cyclonedx-json                   # an OCI/docker archive

  closure sbom /usr/bin/curl --format spdx-json                   # what a build would hold

Packages come from the image's /var/lib/dpkg/status.d records (closure writes them), a
dpkg status database, or Alpine's apk database (closure writes one cut to the image);
licenses from /usr/share/doc/PKG/copyright, or apk's L: field. Every regular file is
listed with its SHA-256.
"""


def register(app: typer.Typer) -> None:
    @app.command(help="Write an SBOM (SPDX 2.3 or CycloneDX 1.5 JSON) of an image or of TARGETs." + EXAMPLES)
    @ao.target_options
    @rego.source_options
    def sbom(
        source: List[str] = typer.Argument(..., metavar="IMAGE|TARGET...", help="An image (OCI layout or archive, docker-archive), a rootfs directory, or programs."),
        fmt: str = typer.Option("spdx-json", "--format", help="spdx-json | cyclonedx-json."),
        output: Optional[str] = typer.Option(None, "--output", "-o", help="Write here (default: stdout)."),
        ref: Optional[str] = ao.RefOpt,
        targets: TargetOptions = None,
        registry=None,
    ) -> None:
        from ..audit import sbom as sb
        from ..audit.output import check_file_destination, write_file
        sb.check_format(fmt)          # bad flags fail before any work
        if output:
            check_file_destination(output)
        inv = ao.load(source, ref=ref, registry=registry, targets=targets, allow=("image", "rootfs", "target"))
        data = sb.render(inv, fmt)
        if output:
            write_file(output, data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()

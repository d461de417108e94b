"""`closure report`: one self-contained HTML page about an image or TARGETs."""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

import typer

from . import audit_options as ao
from . import registry_options as rego

if TYPE_CHECKING:
    from ..audit.load import TargetOptions

EXAMPLES = """

Examples:

  closure report /usr/bin/curl -o curl.html            # analyse and report, reasons included

  closure report curl.oci -o curl.html                 # a built image

  closure analyze curl --json --package-records > a.json; closure report curl.oci --analysis a.json -o r.html

The page needs no network. It answers "why is it big": treemaps of sizes by directory and
by package (the biggest boxes labelled, #N for the N-th biggest file, a colour legend each),
the 20 biggest files each with its chain of reasons, for an image its layers (what each adds,
what later layers hide, the efficiency and wasted bytes), the packages, and every file with
its size, package and reasons; tables open largest first.
"""


def register(app: typer.Typer) -> None:
    @app.command(help="Write an HTML report of why an image or TARGETs are big (treemaps, the biggest files and their reasons, layers, packages, every file)." + EXAMPLES)
    @ao.target_options
    @rego.source_options
    def report(
        source: List[str] = typer.Argument(..., metavar="IMAGE|TARGET...", help="An image, a rootfs directory, an analysis JSON, or programs."),
        output: str = typer.Option(..., "--output", "-o", help="The HTML file to write."),
        analysis: Optional[str] = typer.Option(None, "--analysis", help="An `analyze --json` file whose reasons are shown for an image's files."),
        ref: Optional[str] = ao.RefOpt,
        targets: TargetOptions = None,
        registry=None,
    ) -> None:
        from ..audit.bypackage import group
        from ..audit.html import render
        from ..audit.inventory import attach_reasons, from_analysis
        from ..audit.output import check_file_destination, write_file
        check_file_destination(output)
        reasons = from_analysis(analysis) if analysis else None     # a bad one fails before the work
        inv = ao.load(source, ref=ref, registry=registry, hashes=False, targets=targets)
        if reasons is not None:
            attach_reasons(inv, reasons, analysis)
        write_file(output, render(inv, group(inv)).encode("utf-8", "surrogateescape"))

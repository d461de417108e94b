"""`closure report`: one self-contained HTML page about an image or TARGETs."""
from __future__ import annotations

from typing import List, Optional

import typer

from . import audit_options as ao
from . import options as o

EXAMPLES = """

Examples:

  closure report /usr/bin/curl -o curl.html            # analyse and report, reasons included

  closure report curl.oci -o curl.html                 # a built image

  closure analyze curl --json > a.json; closure report curl.oci --analysis a.json -o r.html

The page needs no network: treemaps of sizes by directory and by package, the packages,
and every file with its size, package and the reasons it is in the image.
"""


def register(app: typer.Typer) -> None:
    @app.command(help="Write an HTML report (size treemaps, packages, every file and why) of an image or TARGETs." + EXAMPLES)
    def report(
        source: List[str] = typer.Argument(..., metavar="IMAGE|TARGET...", help="An image, a rootfs directory, an analysis JSON, or programs."),
        output: str = typer.Option(..., "--output", "-o", help="The HTML file to write."),
        analysis: Optional[str] = typer.Option(None, "--analysis", help="An `analyze --json` file whose reasons are shown for an image's files."),
        ref: Optional[str] = ao.RefOpt,
        root: str = o.RootOpt,
        library_path: Optional[List[str]] = o.LibraryPathOpt,
        no_dlopen_scan: bool = o.NoDlopenScanOpt,
        no_recipes: bool = o.NoRecipesOpt,
        recipe_dirs: Optional[List[str]] = o.RecipesDirOpt,
        no_package_records: bool = ao.NoRecordsOpt,
    ) -> None:
        from ..audit.bypackage import group
        from ..audit.html import render
        from ..audit.inventory import attach_reasons, from_analysis
        from ..audit.load import load
        from ..audit.output import check_file_destination, write_file
        check_file_destination(output)
        t = ao.target_options(root, library_path, no_dlopen_scan, no_recipes, recipe_dirs, no_package_records)
        inv = load(list(source), ref=ref, hashes=False, targets=t)
        ao.warn(t)
        if analysis:
            attach_reasons(inv, from_analysis(analysis))
        write_file(output, render(inv, group(inv)).encode("utf-8", "surrogateescape"))

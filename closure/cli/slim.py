"""`closure slim`: an existing image in, the same image with only what its program needs out."""
from __future__ import annotations

import json
import os
from typing import List, Optional

import typer

from . import options as o
from . import recipe_options as ro
from . import serve_options as so
from . import registry_options as rego
from .progress import Progress

EXAMPLES = """

Examples:

  closure slim app.tar -o app-slim.tar                 # docker save / podman save output

  closure slim app.oci -o slim.oci --probe 'app --self-test'

  closure slim img.tar --ref web:1.2 -o web.tar --probe 'curl -sf https://localhost' --probe-network

  closure slim img.tar -o out.tar --include /usr/share/zoneinfo --report report.json

  closure slim nginx.tar -o slim.tar --serve --http 'GET / 200'   # run it as a service, ask it

IMAGE is an OCI layout dir, an OCI archive, a docker-archive (several images inside: choose
with --ref NAME:TAG, or write IMAGE:NAME:TAG) or a docker-dir. Its layers are unpacked into
a private temporary root (hostile entries refused: exit 2); the image's Entrypoint+Cmd are
analysed there, probes run there in bubblewrap under strace, and the output keeps the
source's config plus the label org.closure.source.digest.

Exit status: 0 done; 1 a probe failed; 2 bad input (unreadable or hostile image, bad flag).
"""

def split_image_ref(image: str, ref: Optional[str]) -> tuple[str, Optional[str]]:
    """'path.tar:name:tag' -> (path.tar, name:tag) when path.tar exists and IMAGE does not."""
    if ref is not None or os.path.exists(image):
        return image, ref
    slash = image.rfind("/")
    colon = image.find(":", slash + 1)
    if colon > 0 and os.path.exists(image[:colon]):
        return image[:colon], image[colon + 1:] or None
    return image, ref


def register(app: typer.Typer) -> None:
    @app.command(help="Slim an existing image: keep what its Entrypoint/Cmd (and probes) need." + EXAMPLES)
    @ro.with_recipe_options
    @rego.source_options
    def slim(
        image: str = typer.Argument(..., help="OCI layout dir, OCI archive, docker-archive or docker-dir."),
        output: str = typer.Option(..., "--output", "-o", help="Where to write the slim image."),
        probe: Optional[List[str]] = typer.Option(None, "--probe", metavar="CMD", help="Run CMD inside the image (bubblewrap + strace) and keep what it touched (repeatable)."),
        probe_network: bool = typer.Option(False, "--probe-network", help="Let probes use the host's network (e.g. servers on 127.0.0.1)."),
        probe_timeout: float = typer.Option(300.0, "--probe-timeout", min=0.1, help="Fail a probe after S seconds."),
        serve: bool = so.ServeOpt,
        serve_cmd: Optional[str] = so.ServeCmdOpt,
        ready: Optional[str] = so.ReadyOpt,
        ready_timeout: Optional[float] = so.ReadyTimeoutOpt,
        http: Optional[List[str]] = so.HttpOpt,
        http_crawl: Optional[int] = so.HttpCrawlOpt,
        client: Optional[List[str]] = so.ClientOpt,
        serve_host_network: bool = so.ServeNetworkOpt,
        ref: Optional[str] = typer.Option(None, "--ref", metavar="NAME:TAG", help="Which image of a multi-image file (a tag alone is enough when unique)."),
        target: Optional[List[str]] = typer.Option(None, "--target", metavar="PROG", help="Another program in the image to keep with its dependencies (repeatable)."),
        include: Optional[List[str]] = typer.Option(None, "--include", metavar="PATH[:DEST]", help="Keep this file or tree of the image (repeatable)."),
        exclude: Optional[List[str]] = typer.Option(None, "--exclude", metavar="GLOB", help="Leave out paths matching GLOB (repeatable)."),
        format: Optional[str] = typer.Option(None, "--format", help="oci | oci-archive | rootfs | rootfs-tar (default: from -o)."),
        tag: Optional[str] = typer.Option(None, "--tag", "-t", metavar="NAME[:TAG]", help="Name of the output (default: the source's name, tag TAG-slim)."),
        compression: Optional[str] = typer.Option(None, "--compression", help="gzip (default) | zstd | none."),
        level: Optional[int] = typer.Option(None, "--level", help="Compression level."),
        report: Optional[str] = typer.Option(None, "--report", metavar="FILE", help="Write the full report (JSON): sizes, removed dirs, every kept file and why."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document instead of the summary."),
        keep_devices: bool = typer.Option(False, "--keep-devices", help="Allow device nodes outside /dev in the source layers."),
        keep_setuid: bool = typer.Option(False, "--keep-setuid", help="Keep setuid/setgid bits (stripped by default)."),
        max_unpacked: str = typer.Option("64G", "--max-unpacked", metavar="SIZE", help="Refuse images that unpack to more than this."),
        tmpdir: Optional[str] = typer.Option(None, "--tmpdir", metavar="DIR", help="Where to unpack the source (default: $TMPDIR)."),
        force: bool = typer.Option(False, "--force", help="Replace what is at the output (a file, or a directory that is not empty)."),
        max_size: Optional[str] = o.MaxSizeOpt,
        max_files: Optional[int] = o.MaxFilesOpt,
        strict: bool = typer.Option(False, "--strict", help="Fail (exit 1, nothing written) when `closure check` finds a kept program that would not link; a warning otherwise."),
        no_dlopen_scan: bool = o.NoDlopenScanOpt,
        no_package_records: bool = typer.Option(False, "--no-package-records", help="Leave out the package records of the packages kept (/var/lib/dpkg/status.d and copyright files; /lib/apk/db/installed on Alpine)."),
        no_recipes: bool = o.NoRecipesOpt,
        recipes: Optional[List[str]] = o.RecipesDirOpt,
        recipe_options: ro.RecipeOptions = None,
        registry=None,
    ) -> None:
        from ..audit.output import check_file_destination, write_file
        from ..errors import BadInput
        from ..image import ImageOptions
        from ..image.extract import Limits
        from ..image.reference import parse_reference
        from dataclasses import replace

        from ..slim import SlimOptions, slim as run_slim, summary
        from .build import _split_include

        from ..registry.transport import Destination, reading
        image, ref = split_image_ref(image, ref)
        dest = Destination(output, registry)
        name, out_tag = parse_reference(tag) if tag else (dest.name, dest.tag or "latest")
        image_opts = ImageOptions(format=format or dest.format, compression=compression, level=level,
                                  name=name, tag=out_tag, keep_setuid=keep_setuid, force=force)
        if report is not None:
            check_file_destination(report)    # before the work, not after it
        from ..units import parse_size
        total = parse_size(max_unpacked, "--max-unpacked")
        if total <= 0:
            raise BadInput("--max-unpacked must be more than 0")
        service = so.serve_options(dict(serve=serve, serve_cmd=serve_cmd, ready=ready,
                                        ready_timeout=ready_timeout, http=http, http_crawl=http_crawl,
                                        client=client, serve_host_network=serve_host_network))
        opts = SlimOptions(
            serve=service,
            ref=ref, targets=tuple(target or ()), probes=tuple(probe or ()),
            probe_network=probe_network, probe_timeout=probe_timeout,
            includes=tuple(_split_include(i) for i in include or ()),
            excludes=tuple(exclude or ()), keep_devices=keep_devices,
            limits=Limits(max_total_bytes=total, max_file_bytes=min(total, Limits().max_file_bytes)),
            tmpdir=tmpdir, dlopen_scan=not no_dlopen_scan, recipes=not no_recipes,
            recipe_dirs=tuple(recipes or ()), package_records=not no_package_records,
            recipe_vars=recipe_options.vars(), strict=strict,
            max_size=None if max_size is None else parse_size(max_size, "--max-size"), max_files=max_files)
        with dest, Progress(enabled=not as_json) as progress:
            with reading(image, ref, registry, tmpdir) as (path, chosen):
                opts = replace(opts, ref=chosen)
                result = run_slim(path, dest.path, opts, image_opts, step=progress.step,
                                  progress=progress.bytes)
            pushed = dest.publish()
        if pushed is not None:
            result.report["pushed"] = pushed.to_json()
        for w in result.closure.warnings:
            typer.echo(f"closure: warning: {w}", err=True)
        for note in result.build.notes if result.build is not None else ():
            typer.echo(f"closure: note: {note}", err=True)
        doc = json.dumps(result.report, indent=2, sort_keys=True) + "\n"
        if report is not None:
            write_file(report, doc.encode())
        if as_json:
            typer.echo(doc, nl=False)
        else:
            typer.echo(summary(result.report))
            if pushed is not None:
                typer.echo(f"  pushed     {pushed.reference}@{pushed.digest} ({pushed.stats.uploaded} blobs "
                           f"uploaded, {pushed.stats.skipped} already there)")

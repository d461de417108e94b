"""write_image: a Closure + Root -> an OCI layout, an OCI/docker archive, or a rootfs.

The one entry point the CLI calls. It chooses the format (from the option or the output
path), streams the layer, writes config and manifests, and publishes atomically.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import BadInput
from ..model import Closure
from ..root import Root
from . import atomic
from .compress import Compression, compression as make_compression
from .config import Platform, closure_platform, image_config, image_env, run_config
from .reasons import LABEL as REASONS_LABEL, encode as encode_reasons
from .docker_archive import write_archive
from .epoch import rfc3339, source_date_epoch
from .oci import MT_LAYER, Descriptor, blob_path
from .oci_layout import write_layout
from .reference import check_name, check_tag, default_name
from .rootfs import write_rootfs
from .layering import PlannedLayer, parse_strategy, plan_layers
from .tarlayer import LayerDigests, LayerPlan, plan_layer, write_layer

FORMATS = ("oci", "oci-archive", "rootfs", "rootfs-tar")
DIR_FORMATS = frozenset({"oci", "rootfs"})


@dataclass(frozen=True)
class ImageOptions:
    format: str | None = None            # None: inferred from the output path
    compression: str | None = None       # None: gzip for images, none for rootfs-tar; rootfs: none
    level: int | None = None             # None: the compression's default
    name: str | None = None              # None: the first target's basename
    tag: str = "latest"
    entrypoint: tuple[str, ...] | None = None   # None: [first target] (or base_config's); () for none
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()            # "K=V", applied after PATH and the closure's env
    user: str | None = None
    workdir: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    keep_setuid: bool = False
    excludes: tuple[str, ...] = ()
    force: bool = False
    # The config to start from (e.g. the source image's, in `closure slim`): ExposedPorts,
    # Volumes, Healthcheck... are kept, the fields above win over it, its Env is kept as it
    # is, and nothing is defaulted from the closure (no PATH, no first-target Entrypoint).
    base_config: Mapping | None = None
    platform: Platform | None = None     # None: read from the closure's ELF files
    created_by: str | None = None        # the history line; None: "closure build TARGETS"
    created: int | None = None           # the config's created time; None: SOURCE_DATE_EPOCH
    layers: str = "one"                  # layer strategy: one | auto | N (closure.image.layering)
    layer_groups: Mapping | None = None  # a family's shared paths per origin (layering.family_groups)


@dataclass(frozen=True)
class BuildResult:
    path: str
    format: str
    format_inferred: bool
    files: int                  # regular files written (hard links not counted)
    entries: int                # every tar entry: dirs, files, links
    content_bytes: int          # bytes of file contents
    layer: LayerDigests         # the top layer (the only one unless --layers)
    compression: Compression
    reference: str | None = None          # "name:tag" (image formats)
    manifest_digest: str | None = None
    config_digest: str | None = None
    layers: tuple = ()          # ((name, LayerDigests), ...) of every layer, bottom first
    notes: tuple[str, ...] = () # what a user should know of the output (zstd readers)

    def to_json(self) -> dict:
        return {
            "path": self.path, "format": self.format, "format_inferred": self.format_inferred,
            "reference": self.reference, "files": self.files, "entries": self.entries,
            "content_bytes": self.content_bytes, "manifest_digest": self.manifest_digest,
            "config_digest": self.config_digest, "layer_digest": self.layer.digest,
            "layer_diff_id": self.layer.diff_id, "layer_size": self.layer.size,
            "layer_raw_size": self.layer.raw_size,
            "compression": self.compression.kind, "level": self.compression.level,
            "layers": [{"name": n, "digest": d.digest, "diff_id": d.diff_id, "size": d.size}
                       for n, d in self.layers],
            "notes": list(self.notes),
        }


def infer_format(out_path: str) -> str:
    """Existing dir, trailing '/', '.oci' or no extension -> OCI layout; '*.tar' -> archive."""
    base = os.path.basename(out_path.rstrip("/"))
    if os.path.isdir(out_path) or out_path.endswith("/") or base.endswith(".oci"):
        return "oci"
    if base.endswith(".tar"):
        return "oci-archive"
    if "." not in base.lstrip("."):
        return "oci"
    raise BadInput(f"cannot tell the output format from {out_path!r}: "
                   f"use a directory, a .tar name, or --format {'|'.join(FORMATS)}")


def check_request(out_path: str, opts: ImageOptions) -> tuple[str, Compression]:
    """Every check on the output and options that needs no analysis, so a bad -o or flag
    fails before any work: returns (format, compression)."""
    fmt = opts.format or infer_format(out_path)
    if fmt not in FORMATS:
        raise BadInput(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    comp = make_compression("none" if fmt == "rootfs" else opts.compression
                            or ("none" if fmt == "rootfs-tar" else "gzip"), opts.level)
    if opts.name:
        check_name(opts.name)
    check_tag(opts.tag)
    parse_strategy(opts.layers)
    image_env({}, opts.env)
    source_date_epoch()
    atomic.check_destination(out_path, fmt in DIR_FORMATS, opts.force)
    return fmt, comp


def write_image(closure: Closure, root: Root, out_path: str, opts: ImageOptions = ImageOptions(),
                progress: Callable[[int, int], None] | None = None) -> BuildResult:
    """Write the closure as an image (or rootfs) at out_path, atomically. progress, if
    given, is called with (content bytes written, content bytes in all) as files go by."""
    fmt, comp = check_request(out_path, opts)
    mtime = source_date_epoch()
    plan = plan_layer(closure, root, keep_setuid=opts.keep_setuid, excludes=opts.excludes)
    total = plan.content_bytes
    on_bytes = (lambda done: progress(done, total)) if progress is not None else None

    oci = None
    with atomic.sigterm_raises(), atomic.staging(out_path) as stage:
        staged = os.path.join(stage, "out")
        if fmt == "rootfs":
            os.mkdir(staged)
            write_rootfs(plan, root, staged, mtime=mtime, progress=on_bytes)
            digests = LayerDigests("", "", 0, 0)
        elif fmt == "rootfs-tar":
            with open(staged, "wb") as f:
                digests = write_layer(plan, root, f, comp, mtime=mtime, progress=on_bytes)
        else:
            layout = staged if fmt == "oci" else os.path.join(stage, "layout")
            oci = _write_oci(closure, root, plan, layout, opts, comp, mtime, on_bytes)
            digests = oci.digests
            if fmt == "oci-archive":
                with open(staged, "wb") as f:
                    write_archive(layout, f, config=oci.config, layers=list(oci.layers),
                                  repo_tags=[oci.reference], mtime=mtime, docker=comp.kind != "zstd")
        atomic.publish(staged, out_path, stage)
    return BuildResult(path=os.path.abspath(out_path), format=fmt, format_inferred=opts.format is None,
                       files=plan.file_count, entries=len(plan.items), content_bytes=total,
                       layer=digests, compression=comp, reference=oci and oci.reference,
                       manifest_digest=oci and oci.manifest.digest, config_digest=oci and oci.config.digest,
                       layers=oci.named if oci else (("all", digests),),
                       notes=_zstd_notes(fmt) if comp.kind == "zstd" else ())


def _zstd_notes(fmt: str) -> tuple[str, ...]:
    """Who cannot read what was written, said at build time rather than at `docker load`."""
    if fmt == "oci-archive":
        return ("zstd layers: the .tar is an OCI archive only, with no docker manifest.json "
                "(docker load of Docker 20.10 fails on zstd with 'invalid tar header'); podman, "
                "skopeo and containerd read it; umoci reads no zstd layer; --compression gzip "
                "gives one file every consumer loads",)
    if fmt == "oci":
        return ("zstd layers: podman, skopeo and containerd read them; umoci and Docker 20.10 do "
                "not (--compression gzip for those)",)
    return ()


@dataclass(frozen=True)
class _Oci:
    digests: LayerDigests           # the top layer's
    layers: tuple[Descriptor, ...]
    named: tuple[tuple[str, LayerDigests], ...]
    config: Descriptor
    manifest: Descriptor
    reference: str


def _write_oci(closure: Closure, root: Root, plan: LayerPlan, layout: str, opts: ImageOptions,
               comp: Compression, mtime: int, on_bytes) -> _Oci:
    """The OCI layout at `layout`: layer blob (streamed to a temp name, then named by its
    digest), config, manifest, index."""
    name = opts.name or default_name(closure.targets)
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    planned = plan_layers(closure, root, plan, opts.layers, opts.layer_groups)
    layers, named, done = [], [], 0
    for layer_plan in planned:
        # Each layer is its own stream; progress counts content bytes across all of them.
        base = done
        step = (lambda n, base=base: on_bytes(base + n)) if on_bytes is not None else None
        partial = os.path.join(layout, "blobs", "sha256", ".layer.partial")
        with open(partial, "wb") as f:
            digests = write_layer(layer_plan.plan, root, f, comp, mtime=mtime, progress=step)
        done += layer_plan.plan.content_bytes
        layer = Descriptor(MT_LAYER + comp.media_suffix, digests.digest, digests.size)
        if os.path.exists(blob_path(layout, layer.digest)):   # two identical layers
            os.unlink(partial)
        else:
            os.rename(partial, blob_path(layout, layer.digest))
        layers.append(layer)
        named.append((layer_plan.name, digests))

    created = rfc3339(mtime if opts.created is None else opts.created)  # file mtimes stay mtime
    platform = opts.platform or closure_platform(closure, root)
    targets = " ".join(closure.targets)
    entrypoint = opts.entrypoint
    if entrypoint is None and opts.base_config is None:
        entrypoint = tuple(closure.entrypoint or closure.targets[:1])
    config = image_config(
        platform=platform, created=created, diff_ids=[d.diff_id for _, d in named],
        config=run_config(base=opts.base_config, closure_env=closure.env, env=opts.env,
                          entrypoint=entrypoint, cmd=opts.cmd, user=opts.user,
                          workdir=opts.workdir or (closure.workdir if opts.base_config is None else None),
                          labels={**opts.labels, REASONS_LABEL: encode_reasons(closure)}),
        created_by=opts.created_by or f"closure build {targets}".rstrip(),
        comment=_comments(planned, targets, plan))
    manifest, config_desc = write_layout(layout, config=config, layers=layers, platform=platform,
                                         name=name, tag=opts.tag, created=created)
    return _Oci(digests, tuple(layers), tuple(named), config_desc, manifest, f"{name}:{opts.tag}")


def _comments(planned: tuple[PlannedLayer, ...], targets: str, plan: LayerPlan) -> str | list[str]:
    whole = f"closure of {targets or 'nothing'}: {plan.file_count} files, {plan.content_bytes} bytes"
    if len(planned) == 1:
        return whole
    return [p.comment for p in planned[:-1]] + [f"{whole}; this layer: {planned[-1].comment}"]

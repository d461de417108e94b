"""`closure build`: targets (or a spec file) -> a deterministic image, archive or rootfs."""
from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from typing import List, Optional

import typer

from . import options as o
from . import recipe_options as ro
from . import registry_options as rego
from . import serve_options as so
from .progress import Progress

EXAMPLES = """

Examples:

  closure build /usr/bin/curl -o curl.oci                 # OCI layout directory

  closure build /usr/bin/curl -o curl.tar && podman load -i curl.tar   # OCI + docker archive

  closure build curl -o c.tar -t tools/curl:8 --compression zstd --cmd '--version'

  closure build -f sample_images/curl/closure.toml        # a spec file; flags override it

  closure build /usr/bin/python3 --probe "python3 -c 'import ssl, sqlite3'" -o py.tar   # + what a run loads

  closure build /usr/bin/openssl --probe 'openssl dgst -md4 -provider legacy </dev/null' --probe-in-image -o o.tar

  closure build /usr/bin/curl -o fs --format rootfs --verify 'curl --version'

  closure build /usr/sbin/nginx --cmd "-g 'daemon off;'" --serve --ready tcp:80 --http 'GET / 200' -o nginx.tar

  closure build /usr/bin/redis-server --serve --ready tcp:6379 --client 'redis-cli ping' -o redis.tar

  closure build app.py -o app.tar                         # a Python app: its venv's imports, found statically

  closure build --app-dir ./web:/app -o web.tar           # a Node app directory (package.json main) at /app

  closure build /usr/bin/curl -o docker://registry.example.com/tools/curl:8   # build + push

  closure build curl git jq --each -o 'docker://registry.example.com/tools/{name}:1'   # a family sharing layers

The output format follows -o: a directory, a name with no extension or '.oci' gives an OCI
layout; '*.tar' gives one archive that podman/skopeo read as OCI and docker as docker-archive.
Transports as skopeo names them: oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE,
docker://HOST/REPO:TAG (built in a temporary layout, then pushed).
SOURCE_DATE_EPOCH sets every timestamp (default 0): same inputs, same digest.
"""


def _given(value) -> bool:
    """Typed on the command line? typer says "not given" with None, False or [] (by
    identity: `--level 0` is given, though 0 == False)."""
    return not (value is None or value is False or value == [])


def register(app: typer.Typer) -> None:
    @app.command(help="Build an image holding exactly what TARGETs need." + EXAMPLES)
    @rego.registry_options
    def build(
        targets: Optional[List[str]] = typer.Argument(None, help="Programs or scripts; the first is the entrypoint."),
        output: Optional[str] = typer.Option(None, "--output", "-o", help="Where to write the image."),
        spec: Optional[str] = typer.Option(None, "--file", "-f", help="A closure.toml spec: option names as keys."),
        format: Optional[str] = typer.Option(None, "--format", help="oci | oci-archive | rootfs | rootfs-tar (default: from -o)."),
        tag: Optional[str] = typer.Option(None, "--tag", "-t", metavar="NAME[:TAG]", help="Image name (default: the first target's name, tag latest)."),
        compression: Optional[str] = typer.Option(None, "--compression", help="gzip (default) | zstd | none."),
        platform: Optional[List[str]] = typer.Option(None, "--platform", metavar="OS/ARCH=ROOT", help="Build for this platform from the programs in ROOT (repeatable): one image index with a manifest per platform (-o an OCI layout dir or docker://)."),
        each: bool = typer.Option(False, "--each", help="One image per TARGET, -o naming each with {name}; they share layers (--layers auto)."),
        layers: Optional[str] = typer.Option(None, "--layers", metavar="one|auto|N", help="one layer (default), or files grouped by the package that owns them: auto (up to 10 layers) or N layers; images of one root then share layers."),
        level: Optional[int] = typer.Option(None, "--level", help="Compression level (gzip 0-9, default 1; zstd -7..22, default 3)."),
        entrypoint: Optional[str] = typer.Option(None, "--entrypoint", help="Entrypoint, shell-style ('' for none; default: the first target)."),
        cmd: Optional[str] = typer.Option(None, "--cmd", help="Cmd: default arguments, shell-style."),
        env: Optional[List[str]] = typer.Option(None, "--env", "-e", metavar="K=V", help="Environment variable (repeatable)."),
        user: Optional[str] = typer.Option(None, "--user", help="User to run as (name or uid[:gid]); recipes add it to /etc/passwd."),
        workdir: Optional[str] = typer.Option(None, "--workdir", help="Working directory."),
        label: Optional[List[str]] = typer.Option(None, "--label", metavar="K=V", help="Image label (repeatable)."),
        include: Optional[List[str]] = typer.Option(None, "--include", metavar="SRC[:DEST]", help="Add a file or tree from the root, optionally at another path (repeatable)."),
        app_dir: Optional[List[str]] = typer.Option(None, "--app-dir", metavar="DIR[:DEST]", help="Put the app tree DIR at DEST in the image (default /app), whole; it is the target when none is given; WorkingDir is DEST."),
        runtime: Optional[str] = typer.Option(None, "--runtime", metavar="PROGRAM", help="The interpreter of an app target (default: its venv's python, or python3/node/java on PATH)."),
        dlopen_depth: Optional[int] = typer.Option(None, "--dlopen-depth", min=0, metavar="N", help="Follow dlopen strings of objects that were themselves found by a string N levels deep (default 1: only strings of objects found otherwise)."),
        exclude: Optional[List[str]] = typer.Option(None, "--exclude", metavar="GLOB", help="Leave out paths matching GLOB and everything below them (repeatable)."),
        root: Optional[str] = typer.Option(None, "--root", help="Take files from this directory instead of / (a sysroot, an unpacked image)."),
        created: Optional[str] = typer.Option(None, "--created", metavar="WHEN", help="The image's created time: epoch (default: SOURCE_DATE_EPOCH, else 1970, shown as '56 years ago'), now (a new digest every build), seconds, or RFC 3339. File times stay SOURCE_DATE_EPOCH."),
        keep_setuid: bool = typer.Option(False, "--keep-setuid", help="Keep setuid/setgid bits (stripped by default)."),
        force: bool = typer.Option(False, "--force", help="Replace what is at the output (a file, or a directory that is not empty)."),
        library_path: Optional[List[str]] = o.LibraryPathOpt,
        no_dlopen_scan: bool = o.NoDlopenScanOpt,
        no_package_records: bool = typer.Option(False, "--no-package-records", help="Leave out the package records that let scanners (syft, trivy, grype) see the packages inside (/var/lib/dpkg/status.d and copyright files; /lib/apk/db/installed on Alpine)."),
        no_recipes: bool = o.NoRecipesOpt,
        recipes: Optional[List[str]] = o.RecipesDirOpt,
        probe: Optional[List[str]] = typer.Option(None, "--probe", metavar="CMD", help="Run the shell command CMD under strace (in an empty scratch dir, with the image's PATH) and add what it touched; it must exit 0 (repeatable)."),
        probe_in_image: bool = typer.Option(False, "--probe-in-image", help="Run each probe inside the candidate image (bubblewrap) instead; add what it fails to find until it passes."),
        probe_network: bool = typer.Option(False, "--probe-network", help="Let probes run in a sandbox (--probe-in-image, --root) use the network."),
        probe_rounds: Optional[int] = typer.Option(None, "--probe-rounds", min=1, help="Rounds of --probe-in-image before giving up (default 5)."),
        serve: bool = so.ServeOpt,
        serve_cmd: Optional[str] = so.ServeCmdOpt,
        ready: Optional[str] = so.ReadyOpt,
        ready_timeout: Optional[float] = so.ReadyTimeoutOpt,
        http: Optional[List[str]] = so.HttpOpt,
        http_crawl: Optional[int] = so.HttpCrawlOpt,
        client: Optional[List[str]] = so.ClientOpt,
        serve_host_network: bool = so.ServeNetworkOpt,
        account: Optional[List[str]] = so.AccountOpt,
        ca_cert: Optional[List[str]] = ro.CaCertOpt,
        locale: Optional[List[str]] = ro.LocaleOpt,
        tz: Optional[str] = ro.TzOpt,
        tzdata: Optional[List[str]] = ro.TzdataOpt,
        gconv: Optional[List[str]] = ro.GconvOpt,
        nss: Optional[List[str]] = ro.NssOpt,
        pycache: bool = ro.PycacheOpt,
        verify: Optional[str] = typer.Option(None, "--verify", metavar="CMD", help="Run CMD in the built image (podman, else bubblewrap); fail if it fails."),
        max_size: Optional[str] = o.MaxSizeOpt,
        max_files: Optional[int] = o.MaxFilesOpt,
        strict: bool = typer.Option(False, "--strict", help="Fail (exit 1, nothing written) when a program of the image would not link (what `closure check` finds) or a target lies inside another root; a warning otherwise."),
        as_json: bool = typer.Option(False, "--json", help="Print the build summary as one JSON document."),
        registry=None,
    ) -> None:
        given = {k: v for k, v in locals().items() if k not in ("spec", "as_json", "registry") and _given(v)}
        values = {}
        if spec is not None:
            from ..spec import load_spec
            values = load_spec(spec)
            values.pop("smoke", None)
        values.update(given)   # the command line overrides the spec
        run_build(values, as_json=as_json, registry=registry)


def _split_include(value: str) -> tuple[str, str]:
    from ..errors import BadInput
    src, sep, dest = value.partition(":")
    dest = dest if sep else src
    if not src.startswith("/") or not dest.startswith("/"):
        raise BadInput(f"--include {value!r}: give absolute paths, SRC or SRC:DEST")
    return src, dest


def _split_app_dir(value: str) -> tuple[str, str]:
    import os

    from ..errors import BadInput
    src, sep, dest = value.partition(":")
    dest = dest if sep else "/app"
    src = os.path.abspath(src) if src and not src.startswith("/") else src
    if not src or not dest.startswith("/"):
        raise BadInput(f"--app-dir {value!r}: give DIR or DIR:/DEST")
    return src, dest


def _argv(value, what: str) -> tuple[str, ...] | None:
    from ..spec import split_argv
    if value is None:
        return None
    return tuple(split_argv(value, what) if isinstance(value, str) else value)


def _labels(items) -> dict[str, str]:
    from ..errors import BadInput
    labels = {}
    for item in items or ():
        key, eq, value = item.partition("=")
        if not key or not eq:
            raise BadInput(f"--label wants KEY=VALUE, got {item!r}")
        labels[key] = value
    return labels


def run_build(v: dict, *, as_json: bool = False, registry=None) -> None:
    from ..errors import BadInput
    from ..registry.transport import Destination, RegistryOptions

    targets = list(v.get("targets") or ())
    app_dirs = tuple(_split_app_dir(a) for a in v.get("app_dir") or ())
    if not targets and app_dirs:
        targets = [app_dirs[0][0]]
    if not targets:
        raise BadInput("nothing to build: give TARGET programs (or 'targets' in the spec)")
    out = v.get("output")
    if not out:
        raise BadInput("no output: give -o OUT (or 'output' in the spec)")
    if v.get("each"):
        return _build_family(v, targets, app_dirs, as_json, registry or RegistryOptions())
    if v.get("platform"):
        return _build_platforms(v, targets, app_dirs, as_json, registry or RegistryOptions())
    dest = Destination(out, registry or RegistryOptions())
    with dest:
        closure, result, verified, pushed = _build(v, dest, targets, app_dirs, progress=not as_json,
                                                   warn=lambda w: typer.echo(f"closure: {w}", err=True))
    for note in result.notes:
        typer.echo(f"closure: note: {note}", err=True)
    if as_json:
        doc = result.to_json()
        doc["warnings"] = list(closure.warnings)
        if verified is not None:
            doc["verify"] = {"runtime": verified.runtime, "emulator": verified.emulator,
                             "returncode": verified.returncode}
        if pushed is not None:
            doc["path"] = out
            doc["pushed"] = pushed.to_json()
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        typer.echo(summary(result, out, pushed))
        if verified is not None:
            typer.echo(f"  verified   {v['verify']} (in {verified.how})")


def _build_family(v: dict, targets: list[str], app_dirs: tuple, as_json: bool, registry) -> None:
    """One image per target, sharing the layers their packages give (so --layers defaults
    to auto here): every closure is collected first, since a shared layer holds what every
    member has of a package; pushes mount what an earlier member already sent."""
    from ..collect import collect
    from ..errors import BadInput
    from ..image.layering import family_groups
    from ..image.reference import default_name
    from ..registry.transport import Destination
    out = v["output"]
    if "{name}" not in out or v.get("tag") or app_dirs:
        raise BadInput("--each: write -o with {name} in it (e.g. docker://HOST/tools/{name}:1); "
                       "no --tag or --app-dir")
    warn = lambda w: typer.echo(f"closure: {w}", err=True)  # noqa: E731
    members = []
    for target in targets:
        one = {**v, "layers": v.get("layers") or "auto", "targets": [target],
               "output": out.replace("{name}", default_name([target]))}
        Destination(one["output"], registry).close()     # a bad -o fails before the work
        root, opts = _collect_options(one, (), _argv(one.get("entrypoint"), "--entrypoint"),
                                      _argv(one.get("cmd"), "--cmd"))
        closure = collect([target], opts)
        for w in closure.warnings:
            warn(f"warning: {w}")
        members.append((one, root, closure))
    groups = family_groups([(c, r) for _, r, c in members])
    mounts: dict[str, str] = {}
    docs = []
    for one, _root, analysed in members:
        with Destination(one["output"], registry) as dest:
            dest.mount_from = mounts
            closure, result, _verified, pushed = _build(one, dest, one["targets"], (), progress=not as_json,
                                                        warn=warn, analysed=analysed, groups=groups)
        if as_json:
            doc = result.to_json()
            doc["warnings"] = list(closure.warnings)
            if pushed is not None:
                doc["path"], doc["pushed"] = one["output"], pushed.to_json()
            docs.append(doc)
        else:
            typer.echo(summary(result, one["output"], pushed))
    if as_json:
        typer.echo(json.dumps({"images": docs}, indent=2, sort_keys=True))


def _build_platforms(v: dict, targets: list[str], app_dirs: tuple, as_json: bool, registry) -> None:
    """One image per --platform OS/ARCH=ROOT, each analysed in its own root, merged into one
    OCI image index (an OCI layout directory, or pushed to docker://)."""
    import os
    import tempfile

    from ..errors import BadInput
    from ..image import atomic
    from ..image.index import merge_layouts
    from ..image.reference import default_name, parse_reference
    from ..registry.pull import parse_platform
    from ..registry.transport import Destination
    wanted = []
    for item in v["platform"]:
        plat, eq, root = item.partition("=")
        if not eq or not root:
            raise BadInput(f"--platform {item!r}: give OS/ARCH=ROOT, e.g. linux/arm64=/srv/arm64-root")
        if not os.path.isdir(root):
            raise BadInput(f"--platform {item!r}: {root} is not a directory")
        wanted.append((parse_platform(plat), root))
    out = v["output"]
    if v.get("verify") or v.get("each"):
        raise BadInput("--platform: no --verify or --each with a multi-platform build")
    warn = lambda w: typer.echo(f"closure: {w}", err=True)  # noqa: E731
    with Destination(out, registry) as dest:
        if dest.format not in (None, "oci") or (dest.format is None and out.endswith(".tar")) \
                or v.get("format") not in (None, "oci"):
            raise BadInput("--platform writes an image index: -o an OCI layout directory or docker://")
        name, tag = parse_reference(v["tag"]) if v.get("tag") else (dest.name or default_name(targets),
                                                                     dest.tag or "latest")
        if not dest.pushes:
            atomic.check_destination(dest.path, True, bool(v.get("force")))
        with tempfile.TemporaryDirectory(prefix="closure-platforms-") as tmp:
            layouts, built = [], []
            for i, (plat, root) in enumerate(wanted):
                sub = {**v, "root": root, "output": os.path.join(tmp, f"{i}.oci"), "format": "oci",
                       "tag": f"{name}:{tag}", "platform": None}
                with Destination(sub["output"]) as one:
                    _closure, result, _v, _p = _build(sub, one, targets, app_dirs, progress=not as_json, warn=warn)
                with open(os.path.join(sub["output"], "index.json")) as f:
                    got = json.load(f)["manifests"][0].get("platform") or {}
                if (got.get("os"), got.get("architecture")) != (plat.os, plat.architecture):
                    raise BadInput(f"--platform {plat.os}/{plat.architecture}={root}: its programs are "
                                   f"{got.get('os')}/{got.get('architecture')}")
                layouts.append(sub["output"])
                built.append({"platform": got, "manifest_digest": result.manifest_digest,
                              "root": root, "files": result.files})
            if dest.pushes:
                index = merge_layouts(layouts, dest.path, name=name, tag=tag)
            else:
                with atomic.sigterm_raises(), atomic.staging(dest.path) as stage:
                    staged = os.path.join(stage, "out")
                    index = merge_layouts(layouts, staged, name=name, tag=tag)
                    atomic.publish(staged, dest.path, stage)
        pushed = dest.publish()
    if as_json:
        doc = {"path": out, "reference": f"{name}:{tag}", "index_digest": index.digest, "images": built}
        if pushed is not None:
            doc["pushed"] = pushed.to_json()
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    lines = [f"closure: built {out} (an image index of {len(built)} platforms)"]
    for b in built:
        p = b["platform"]
        lines.append(f"  {p.get('os')}/{p.get('architecture'):<8} {b['files']} files from {b['root']}  "
                     f"manifest {b['manifest_digest']}")
    lines.append(f"  index      {name}:{tag}  {index.digest}")
    if pushed is not None:
        lines.append(f"  pushed     {pushed.reference}@{pushed.digest}")
    typer.echo("\n".join(lines))


def _collect_options(v: dict, app_dirs: tuple, entrypoint, cmd):
    """(root, collect.Options) from the build's values."""
    from ..collect import Options
    from ..root import Root
    user = v.get("user")
    recipe_vars = ro.recipe_vars(
        user=user, ca_cert=v.get("ca_cert"), locale=v.get("locale"), tz=v.get("tz"),
        tzdata=v.get("tzdata"), gconv=v.get("gconv"), nss=v.get("nss"), pycache=bool(v.get("pycache")))
    root = Root(v.get("root") or "/")
    env_pairs = tuple(tuple(e.split("=", 1)) for e in v.get("env") or () if "=" in e)
    serve = so.serve_options(v, entrypoint=entrypoint, cmd=cmd, user=user, workdir=v.get("workdir"))
    return root, Options(
        root=root, library_path=o.split_library_path(v.get("library_path")),
        dlopen_scan=not v.get("no_dlopen_scan"), recipes=not v.get("no_recipes"),
        recipe_dirs=tuple(v.get("recipes") or ()), recipe_vars=recipe_vars,
        probes=tuple(v.get("probe") or ()),
        probe_in_image=bool(v.get("probe_in_image")), probe_network=bool(v.get("probe_network")),
        probe_rounds=v.get("probe_rounds") or 5,
        includes=tuple(_split_include(i) for i in v.get("include") or ()),
        excludes=tuple(v.get("exclude") or ()),
        package_records=not v.get("no_package_records"),
        runtime=v.get("runtime"), app_dirs=app_dirs,
        dlopen_depth=1 if v.get("dlopen_depth") is None else v["dlopen_depth"],
        env=env_pairs, serve=serve, accounts=so.parse_accounts(v.get("account")))


def build_values(v: dict):
    """What `closure build` does with these values (option names as keys), printing
    nothing: the BuildResult. closure.api.build is this."""
    from ..errors import BadInput
    from ..registry.transport import Destination, RegistryOptions
    targets = list(v.get("targets") or ())
    app_dirs = tuple(_split_app_dir(a) for a in v.get("app_dir") or ())
    if not targets and app_dirs:
        targets = [app_dirs[0][0]]
    if not targets or not v.get("output"):
        raise BadInput("nothing to build: give targets and an output")
    with Destination(v["output"], RegistryOptions()) as dest:
        closure, result, _verified, _pushed = _build(v, dest, targets, app_dirs, progress=False,
                                                     warn=lambda w: None)   # closure.warnings has them
    return closure, result


def _build(v: dict, dest, targets: list[str], app_dirs: tuple, progress: bool, warn,
           analysed=None, groups=None):
    """The build itself; warn(line) hears each warning ('warning: ...', or 'error: ...' for
    a link problem that --strict fails on) as it happens. A family member comes `analysed`
    (its Closure) with the family's shared layer `groups`."""
    from ..collect import collect
    from ..image import ImageOptions, check_request, write_image
    from ..gate import check_limits
    from ..image.epoch import created_time
    from ..image.reference import parse_reference
    from ..units import parse_size

    out = v["output"]
    name, tag = parse_reference(v["tag"]) if v.get("tag") else (dest.name, dest.tag or "latest")
    user = v.get("user")
    image_opts = ImageOptions(
        format=v.get("format") or dest.format, compression=v.get("compression"), level=v.get("level"),
        layers=str(v.get("layers") or "one"), layer_groups=groups,
        name=name, tag=tag, entrypoint=_argv(v.get("entrypoint"), "--entrypoint"),
        cmd=_argv(v.get("cmd"), "--cmd"),
        env=tuple(v.get("env") or ()), user=user, workdir=v.get("workdir"),
        labels=_labels(v.get("label")), keep_setuid=bool(v.get("keep_setuid")),
        excludes=tuple(v.get("exclude") or ()), force=bool(v.get("force")),
        created=None if v.get("created") is None else created_time(str(v["created"])))
    max_size = None if v.get("max_size") is None else parse_size(str(v["max_size"]), "--max-size")
    verify_argv = _argv(v.get("verify"), "--verify")
    check_request(dest.path, image_opts)   # a bad -o or flag fails before any analysis

    root, collect_opts = _collect_options(v, app_dirs, image_opts.entrypoint, image_opts.cmd)
    probes = len(collect_opts.probes)
    verified = None
    with Progress(enabled=progress) as progress:
        progress.step(f"analysing {' '.join(targets)}"
                      + (f", running {probes} probe{'s' if probes != 1 else ''}" if probes else ""))
        closure = analysed if analysed is not None else collect(targets, collect_opts)
        for w in closure.warnings if analysed is None else ():
            warn(f"warning: {w}")
        if closure.foreign_root and v.get("strict"):
            from ..errors import JobFailed
            raise JobFailed(f"a target lies inside {closure.foreign_root}: build with --root {closure.foreign_root} (--strict)")
        check_limits(closure, max_size, v.get("max_files"))
        progress.step("checking that every program links")
        check_links(closure, root, collect_opts.library_path, bool(v.get("strict")), warn)
        progress.step(f"writing {out}")
        result = write_image(closure, root, dest.path, image_opts, progress=progress.bytes)
        if verify_argv:
            from ..verify import verify
            progress.step(f"verifying: {shlex.join(verify_argv)}")
            verified = verify(dest.path, verify_argv)
        if dest.pushes:
            progress.step(f"pushing {out}")
        pushed = dest.publish()
    return closure, result, verified, pushed


def check_links(closure, root, library_path=(), strict: bool = False, warn=None) -> None:
    """`closure check` on what is about to be written: each problem a warning (kept in
    closure.warnings too), or with --strict the job fails before anything is written."""
    from ..check import check_closure
    from ..errors import JobFailed
    report = check_closure(closure, root, library_path)
    for line in report.lines():
        closure.warnings.append(line)
        if warn is not None:
            warn(f"{'error' if strict else 'warning'}: {line}")
    if strict and not report.ok:
        raise JobFailed(f"{len(report.problems)} link problems in the image (--strict)")


def run_command(result, out: str, flags: Sequence[str] = ()) -> str:
    """The command a user types next to run what was built; `flags` go to `podman run`."""
    q = shlex.quote(out)
    run = shlex.join(["podman", "run", "--rm", *flags])
    if result.format == "oci":
        return f"{run} oci:{q}:{result.reference.rsplit(':', 1)[1]}"
    if result.format == "oci-archive":
        return f"podman load -i {q} && {run} {result.reference}"
    if result.format == "rootfs":
        return f"{run} --rootfs {shlex.quote(result.path)} CMD"
    return f"podman import {q} IMAGE && {run} IMAGE CMD"


def summary(result, out: str, pushed=None) -> str:
    from ..report import human_size
    how = "inferred from -o" if result.format_inferred else "as asked"
    lines = [f"closure: built {out} ({result.format}, {how})",
             f"  files      {result.files} files, {result.entries} entries, {human_size(result.content_bytes)}"]
    if result.format in ("oci", "oci-archive", "rootfs-tar"):
        comp = result.compression
        lines.append(f"  layer      {human_size(result.layer.size)} {comp.kind}"
                     + (f"-{comp.level}" if comp.kind != "none" else "") + f"  {result.layer.digest}")
    if result.manifest_digest:
        lines.append(f"  image      {result.reference}  manifest {result.manifest_digest}")
    from ..verify import working_podman_flags
    flags = working_podman_flags() or ()
    if pushed is not None:
        s = pushed.stats
        lines.append(f"  pushed     {pushed.reference}@{pushed.digest}")
        lines.append(f"  blobs      {s.uploaded} uploaded ({human_size(s.bytes_uploaded)}), {s.mounted} mounted, "
                     f"{s.skipped} already there")
        lines.append(f"  run it     {shlex.join(['podman', 'run', '--rm', *flags, pushed.reference])}")
        return "\n".join(lines)
    lines.append(f"  run it     {run_command(result, out, flags)}")
    return "\n".join(lines)

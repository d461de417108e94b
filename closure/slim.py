"""slim: an existing image in, the same image minus what its program never needs out.

The image is read (closure.image.read) and its layers applied into a temporary root
(closure.image.extract). Its Entrypoint+Cmd are the targets, found on the image's own PATH;
the analysis runs inside that root, so the image's own ld.so.cache, nsswitch.conf and CA
bundle decide, never the host's. Probes run inside the same root under bubblewrap, traced
by the host's strace. The output keeps the source config (Env, User, WorkingDir,
ExposedPorts, Labels, Entrypoint, Cmd, ...) plus labels naming the source image.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import posixpath
import shlex
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .collect import DEFAULT_PATH, Collector, Options
from .errors import BadInput, NotElf, NotFound
from .gate import check_limits
from .image import atomic
from .image.config import Platform, check_run_config
from .image.extract import ExtractStats, Limits, unpacked
from .image.read import SourceImage, open_image
from .image.writer import BuildResult, ImageOptions, check_request, write_image
from .model import Closure, Entry, Reason
from .report import human_size
from .root import Root, normpath

log = logging.getLogger(__name__)

REPORT_SCHEMA = "closure.slim/1"
LABEL_DIGEST = "org.closure.source.digest"       # manifest digest, else config digest
LABEL_IMAGE_ID = "org.closure.source.image-id"   # config digest
LABEL_REF = "org.closure.source.ref"
# Config keys carried over from the source (write_image adds to its Env and Labels).
KEPT_CONFIG = ("User", "ExposedPorts", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
               "StopSignal", "Healthcheck", "Shell", "OnBuild", "ArgsEscaped", "Env", "Labels")
SHELLS = frozenset({"sh", "bash", "dash", "ash", "busybox"})
PROBE_SCRATCH = ("/var/tmp",)          # scratch space, besides the trace's own drops
TOP_DIR_DEPTH = 3
TOP_DIRS = 15
MAX_LINK_CHAIN = 16


@dataclass(frozen=True)
class SlimOptions:
    ref: str | None = None                    # which image, when the file holds several
    targets: tuple[str, ...] = ()             # more programs beside Entrypoint+Cmd
    probes: tuple[str, ...] = ()
    probe_network: bool = False
    probe_timeout: float | None = 300.0
    serve: object | None = None               # closure.trace.serve.ServeOptions (--serve)
    includes: tuple[tuple[str, str], ...] = ()
    excludes: tuple[str, ...] = ()
    keep_devices: bool = False
    limits: Limits = Limits()
    tmpdir: str | None = None
    dlopen_scan: bool = True
    recipes: bool = True
    recipe_dirs: tuple[str, ...] = ()
    recipe_vars: object | None = None
    package_records: bool = True              # status.d records of the packages kept
    strict: bool = False                      # a link problem (closure check) fails the job
    max_size: int | None = None               # gate.check_limits: fail before writing
    max_files: int | None = None


@dataclass(frozen=True)
class Inventory:
    """Regular files of a root: image path -> size; bytes count hard-linked files once."""

    files: dict
    bytes: int
    dirs: int
    symlinks: int


@dataclass(frozen=True)
class ProbeRun:
    command: str
    duration: float
    paths: int
    warnings: tuple[str, ...]


@dataclass
class SlimResult:
    source: SourceImage
    extract: ExtractStats
    before: Inventory
    closure: Closure
    build: BuildResult
    probes: list[ProbeRun] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)


# -- the whole job ---------------------------------------------------------------------------

def slim(image_path: str, out_path: str, opts: SlimOptions = SlimOptions(),
         image_opts: ImageOptions = ImageOptions(),
         step: Callable[[str], None] | None = None,
         progress: Callable[[int, int], None] | None = None) -> SlimResult:
    """The whole job. `step`, if given, hears what is being done (for a progress line);
    `progress` hears how far writing the layer is, as write_image tells it."""
    step = step or (lambda _msg: None)
    check_request(out_path, image_opts)      # a bad -o or flag fails before any work
    if any(not probe.strip() for probe in opts.probes):
        raise BadInput("--probe: empty command: give a shell command that runs the program")
    if opts.tmpdir is not None and not os.path.isdir(opts.tmpdir):
        raise BadInput(f"--tmpdir {opts.tmpdir}: no such directory")
    # SIGTERM unwinds like Ctrl-C: the temporary root and any staged output are removed.
    with atomic.sigterm_raises(), open_image(image_path, opts.ref) as source:
        config = check_run_config(source.config.get("config") or {}, image_path)
        step(f"unpacking {len(source.layers)} layer{'s' if len(source.layers) != 1 else ''} "
             f"({human_size(source.compressed_size)})")
        with unpacked(source, tmpdir=opts.tmpdir, keep_devices=opts.keep_devices,
                      limits=opts.limits) as (root_path, stats):
            before = inventory(root_path)
            root = Root(root_path)
            env = config_env(config)
            programs, files, notes = command_targets(root, config, env, opts.targets)
            probes = []
            traced: list[tuple[str, list[tuple[str, str]]]] = []
            for probe in opts.probes:
                step(f"probe: {probe}")
                run, paths = run_probe_in_image(
                    root, probe, env, config.get("WorkingDir") or "/", opts.probe_network,
                    opts.probe_timeout, include_secrets=tuple(src for src, _ in opts.includes))
                probes.append(run)
                traced.append((probe, paths))
            services = []
            if opts.serve is not None:
                step("service: " + (opts.serve.command or " ".join(
                    (config.get("Entrypoint") or []) + (config.get("Cmd") or []))))
                run, paths, result = run_service_in_image(root, config, env, opts)
                probes.append(run)
                traced.append((run.command, paths))
                services.append(result)
            step("analysing " + " ".join(programs))
            closure = analyse(root, programs, files, traced, opts, env, config, owners=stats.owners,
                              services=services)
            closure.warnings[:0] = notes + [w for p in probes for w in p.warnings]
            check_limits(closure, opts.max_size, opts.max_files)
            step("checking that every program links")
            closure.warnings += link_problems(closure, root, opts.strict)
            step(f"writing {out_path}")
            result = write_image(closure, root, out_path, slim_image_options(source, config, image_opts),
                                 progress=progress)
            slimmed = SlimResult(source, stats, before, closure, result, probes, list(closure.targets))
            slimmed.report = build_report(slimmed)
            return slimmed


def link_problems(closure: Closure, root: Root, strict: bool) -> list[str]:
    """`closure check` on what slim keeps, as warnings; with strict, a failed job."""
    from .check import check_closure
    from .errors import JobFailed
    report = check_closure(closure, root)
    if strict and not report.ok:
        raise JobFailed(f"the slim image would not link (--strict): {report.lines()[0]}"
                        + (f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""))
    return report.lines()


def config_env(config: dict) -> dict[str, str]:
    """The image's Env as a dict (check_run_config made sure it holds KEY=VALUE strings)."""
    return dict(item.split("=", 1) for item in config.get("Env") or ())


# -- what to analyse ---------------------------------------------------------------------------

def command_targets(root: Root, config: dict, env: dict[str, str], extra: Sequence[str] = ()
                    ) -> tuple[list[str], list[str], list[str]]:
    """(programs, argument files, notes) from Entrypoint+Cmd and --target. The program is
    looked up on the image's PATH (relative names against WorkingDir); an argument naming a
    file in the image (`python3 app.py`) joins too. `sh -c 'SCRIPT'` is looked into: its
    first word is a program as well. Raises NotFound when the main program is not there."""
    from .trace.select import is_secret

    argv = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
    workdir = config.get("WorkingDir") or "/"
    path = env.get("PATH", DEFAULT_PATH)
    if not argv and not extra:
        raise BadInput("the image has no Entrypoint or Cmd: name the program with --target")
    programs: list[str] = []
    files: list[str] = []
    notes: list[str] = []
    commands = [argv] if argv else []
    if len(argv) >= 3 and posixpath.basename(argv[0]) in SHELLS and argv[1] == "-c":
        try:
            commands.append(shlex.split(argv[2]))
        except ValueError:
            notes.append(f"cannot split the shell command {argv[2]!r}: only {argv[0]} is analysed")
    for i, words in enumerate(commands):
        if not words:
            continue
        found = find_program(root, words[0], path, workdir)
        if found is None:
            if i == 0:
                raise NotFound(f"the image's command {words[0]!r} is not in the image "
                               f"(PATH={path}, WorkingDir={workdir})")
            notes.append(f"{words[0]!r} (in the image's shell command) not found on its PATH")
            continue
        programs.append(found)
        for arg in words[1:]:
            value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
            if value.startswith("-") or not value:
                continue
            cand = normpath(posixpath.join(workdir, value))
            if not root.is_file(cand) or cand in programs:
                continue
            if is_secret(cand):
                notes.append(f"the image's command names {cand}, a secret: not taken (--include it to take it)")
                continue
            files.append(cand)
    for name in extra:
        found = find_program(root, name, path, workdir)
        if found is None:
            raise NotFound(f"--target {name}: not in the image (PATH={path})")
        programs.append(found)
    return list(dict.fromkeys(programs)), list(dict.fromkeys(files)), notes


def find_program(root: Root, name: str, path: str, workdir: str) -> str | None:
    if "/" in name:
        cand = normpath(posixpath.join(workdir, name))
        return cand if root.is_file(cand) else None
    for d in path.split(":"):
        cand = normpath(posixpath.join(workdir, d or ".", name))
        if root.is_file(cand):
            return cand
    return None


# -- probes ------------------------------------------------------------------------------------

def run_probe_in_image(root: Root, probe: str, env: dict[str, str], cwd: str, network: bool,
                       timeout: float | None, include_secrets: Sequence[str] = ()
                       ) -> tuple[ProbeRun, list[tuple[str, str]]]:
    """Run probe inside the root with the image's Env and WorkingDir (bubblewrap, traced
    from the host, the probe string read by a helper shell from the host so no shell of
    the image's joins unless the probe runs one); return the image paths it used. A probe
    that fails is a failed job: its stderr tail says why."""
    from .trace.probe import check_passed
    from .trace.probe_sandbox import HELPER_DIR, helper_shell, trace_in_tree
    from .trace.select import traced_paths

    run_env = dict(env)
    run_env.setdefault("PATH", DEFAULT_PATH)
    run_env.setdefault("HOME", "/root")
    if not root.is_dir(cwd):
        cwd = "/"
    with helper_shell() as helper:
        result = trace_in_tree(root.path, probe, helper, env=run_env, network=network, cwd=cwd,
                               timeout=timeout)
    check_passed(probe, result)
    paths, warnings = traced_paths(result.accesses, root, scratch=(HELPER_DIR,) + PROBE_SCRATCH,
                                   include_secrets=include_secrets)
    return ProbeRun(probe, result.duration, len(paths),
                    tuple(f"probe {probe!r}: {w}" for w in warnings)), paths


def run_service_in_image(root: Root, config: dict, env: dict[str, str], opts: SlimOptions):
    """`--serve`: the image's Entrypoint+Cmd (or --serve-cmd) as a service in the sandbox over
    the unpacked root, with its User, Env, WorkingDir; (ProbeRun, image paths, the trace)."""
    from .sandbox import home_of, lookup_user
    from .trace.probe_sandbox import HELPER_DIR, helper_shell
    from .trace.select import traced_paths
    from .trace.serve import exposed_ports, serve_in

    so = opts.serve
    if not so.exposed:
        so = dataclasses.replace(so, exposed=exposed_ports(config))
    argv = so.command if so.command is not None else tuple(
        (config.get("Entrypoint") or []) + (config.get("Cmd") or []))
    if not argv:
        raise BadInput("--serve: the image has no Entrypoint or Cmd: give --serve-cmd 'CMD'")
    user = lookup_user(root, config.get("User"))
    run_env = dict(env)
    run_env.setdefault("PATH", DEFAULT_PATH)
    run_env.setdefault("HOME", home_of(root, user.uid) or "/")
    cwd = config.get("WorkingDir") or "/"
    with helper_shell() as helper:
        served = serve_in(root.path, argv, so, env=run_env, cwd=cwd, user=user, helper=helper)
    what = argv if isinstance(argv, str) else shlex.join(argv)
    paths, warnings = traced_paths(served.result.accesses, root, scratch=(HELPER_DIR,) + PROBE_SCRATCH,
                                   include_secrets=tuple(src for src, _ in opts.includes))
    notes = tuple(served.notes) + tuple(f"service {what!r}: {w}" for w in warnings)
    return ProbeRun(f"--serve {what}", served.result.duration, len(paths), notes), paths, served.result


# -- the analysis ------------------------------------------------------------------------------

def analyse(root: Root, programs: Sequence[str], files: Sequence[str],
            traced: Sequence[tuple[str, Sequence[tuple[str, str]]]], opts: SlimOptions,
            env: dict[str, str], config: dict, owners: dict | None = None,
            services: Sequence = ()) -> Closure:
    """collect()'s fixed point, seeded with the image's command and the probes' paths.
    (collect() runs its probes itself, in /tmp with the build's PATH; a slim probe needs the
    image's Env and WorkingDir, so it ran before, and its paths come in here.)"""
    from .trace.probe import add_ids, add_traced, add_written_parents

    copts = Options(root=root, dlopen_scan=opts.dlopen_scan, recipes=opts.recipes,
                    recipe_dirs=opts.recipe_dirs, recipe_vars=opts.recipe_vars,
                    includes=opts.includes, excludes=opts.excludes,
                    path=env.get("PATH", DEFAULT_PATH), package_records=opts.package_records)
    c = Collector(copts)
    for program in programs:
        c.closure.targets.append(c.add_target(program))
    for f in files:
        _add_program_or_file(c, f, Reason("target", name=f))
    workdir = config.get("WorkingDir")
    if workdir and normpath(workdir) != "/" and root.is_dir(workdir):
        c.add_path(workdir, Reason("include", name="WorkingDir"))
    for probe, paths in traced:
        for path, kind in paths:
            add_traced(c, path, kind, Reason("traced", probe=probe))
    for result in services:         # what a service created files in, and the ids it used
        reason = Reason("traced", probe="--serve")
        add_written_parents(c, result, reason)
        add_ids(c, result)
    c.add_includes()
    c.run()
    _keep_accounts(c, config.get("User") or "root")
    c.finish()
    if owners:
        _copy_owners(c, owners)
    return c.closure


def _add_program_or_file(c: Collector, path: str, reason: Reason) -> None:
    """A program (ELF or #! script: its interpreter follows), else a plain file."""
    try:
        c.add_target(path, reason)
    except (NotElf, BadInput):
        c.add_path(path, reason)


def _copy_owners(c: Collector, owners: dict) -> None:
    """Files and directories keep their owner in the source image (an app's data dir
    owned by its user), as the extraction recorded it; what closure made stays as made."""
    for e in c.closure.entries.values():
        if e.type == "symlink" or e.content is not None or (e.uid, e.gid) != (0, 0):
            continue
        st = c.root.lstat(e.source or e.path)
        if st is not None:
            e.uid, e.gid = owners.get((st.st_dev, st.st_ino), (0, 0))


def _keep_accounts(c: Collector, user: str) -> None:
    """The image's own /etc/passwd and /etc/group are kept instead of the generated ones,
    whatever its User (its services look their accounts up there); never shadow files."""
    for ipath in ("/etc/passwd", "/etc/group"):
        if not c.root.is_file(ipath):
            continue
        old = c.closure.entries.pop(ipath, None)
        c.add_path(ipath, Reason("include", name=f"User {user}"))
        kept = c.closure.entries.get(c.root.resolve(ipath).path)
        if old is not None and kept is not None:
            for r in old.reasons:
                kept.add_reason(r)


# -- the before picture ------------------------------------------------------------------------

def inventory(root_path: str) -> Inventory:
    """Walk the unpacked root (links never followed)."""
    files: dict[str, int] = {}
    seen: set[tuple[int, int]] = set()
    total = dirs = links = 0
    stack = [("", root_path)]
    while stack:
        ipath, host = stack.pop()
        with os.scandir(host) as it:
            for e in it:
                st = e.stat(follow_symlinks=False)
                p = ipath + "/" + e.name
                if stat.S_ISDIR(st.st_mode):
                    dirs += 1
                    stack.append((p, e.path))
                elif stat.S_ISLNK(st.st_mode):
                    links += 1
                elif stat.S_ISREG(st.st_mode):
                    files[p] = st.st_size
                    if (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        total += st.st_size
    return Inventory(files, total, dirs, links)


# -- writing -----------------------------------------------------------------------------------

def slim_image_options(source: SourceImage, config: dict, opts: ImageOptions) -> ImageOptions:
    """The output keeps the source's config (its KEPT_CONFIG keys) and platform, gains
    labels naming the source, and is named NAME:TAG-slim after it unless named."""
    labels = {LABEL_DIGEST: source.digest, LABEL_IMAGE_ID: source.config_digest}
    if source.reference:
        labels[LABEL_REF] = source.reference
    name, tag = (opts.name, opts.tag) if opts.name else default_reference(source)
    return dataclasses.replace(
        opts, name=name, tag=tag, labels={**labels, **opts.labels},
        base_config={k: config[k] for k in KEPT_CONFIG if k in config},
        platform=declared_platform(source),
        created_by=f"closure slim {source.reference or source.digest}")


def declared_platform(source: SourceImage) -> Platform | None:
    """The platform the source's config names (None when it names none)."""
    arch, os_name = source.config.get("architecture"), source.config.get("os")
    if isinstance(arch, str) and arch and isinstance(os_name, str) and os_name:
        variant = source.config.get("variant")
        return Platform(arch, os_name, variant if isinstance(variant, str) and variant else None)
    return None


def default_reference(source: SourceImage) -> tuple[str, str]:
    """name:TAG-slim after the source's name, 'slim:latest' when it has none."""
    from .image.reference import check_name, check_tag
    ref = source.reference or (source.names[0] if source.names else None)
    if ref and ":" in ref.rsplit("/", 1)[-1]:
        name, tag = ref.rsplit(":", 1)
        try:
            return check_name(name), check_tag(f"{tag}-slim"[:128])
        except BadInput:
            pass
    return "slim", "latest"


# -- the report --------------------------------------------------------------------------------

_REASON_ORDER = ("target", "interp", "needed", "shebang", "runtime", "import", "dlopen-string",
                 "traced", "recipe", "include", "generated", "symlink", "parent")


def main_reason(entry: Entry, entries: dict[str, Entry]) -> str:
    """The one reason a file is counted under in the summary: the most direct one; a file
    reached through a link counts under the link's reason (libcurl.so.4.8.0 is 'needed')."""
    for _ in range(MAX_LINK_CHAIN):
        best = min(entry.reasons, key=lambda r: (_REASON_ORDER.index(r.kind) if r.kind in _REASON_ORDER
                                                 else len(_REASON_ORDER), r.recipe or ""))
        if best.kind != "symlink" or best.by not in entries:
            break
        entry = entries[best.by]
    return f"recipe:{best.recipe}" if best.kind == "recipe" and best.recipe else best.kind


def removed_dirs(before: Inventory, kept: set[str], depth: int = TOP_DIR_DEPTH,
                 limit: int = TOP_DIRS) -> list[dict]:
    """Bytes and files removed, summed per directory cut at `depth` components."""
    sums: dict[str, list[int]] = {}
    for path, size in before.files.items():
        if path in kept:
            continue
        parts = path.split("/")[1:-1][:depth]
        key = "/" + "/".join(parts)
        s = sums.setdefault(key, [0, 0])
        s[0] += size
        s[1] += 1
    ranked = sorted(sums.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
    return [{"path": p, "bytes": b, "files": n} for p, (b, n) in ranked]


def build_report(r: SlimResult) -> dict:
    entries = r.closure.sorted_entries()
    kept = {e.source or e.path for e in entries if e.type == "file"}
    groups: dict[str, list[int]] = {}
    for e in entries:
        if e.type == "file":
            g = groups.setdefault(main_reason(e, r.closure.entries), [0, 0])
            g[0] += 1
            g[1] += e.size
    after_bytes = r.build.content_bytes
    return {
        "schema": REPORT_SCHEMA,
        "source": {
            "path": r.source.path, "format": r.source.format, "reference": r.source.reference,
            "names": list(r.source.names), "digest": r.source.digest,
            "config_digest": r.source.config_digest, "layers": len(r.source.layers),
            "compressed_bytes": r.source.compressed_size,
        },
        "output": r.build.to_json(),
        "targets": list(r.targets),
        "probes": [{"command": p.command, "seconds": round(p.duration, 3), "paths": p.paths,
                    "warnings": list(p.warnings)} for p in r.probes],
        "before": {"files": len(r.before.files), "bytes": r.before.bytes, "dirs": r.before.dirs,
                   "symlinks": r.before.symlinks},
        "after": {"files": r.build.files, "bytes": after_bytes, "entries": r.build.entries,
                  "layer_bytes": r.build.layer.size},
        "ratio": round(r.before.bytes / after_bytes, 2) if after_bytes else None,
        "removed_dirs": removed_dirs(r.before, kept),
        "kept_by_reason": [{"reason": k, "files": v[0], "bytes": v[1]}
                           for k, v in sorted(groups.items(), key=lambda kv: (-kv[1][1], kv[0]))],
        "extract": r.extract.to_json(),
        "warnings": list(r.closure.warnings),
        "missing": [m.to_json() for m in sorted(r.closure.missing, key=lambda m: (m.by, m.name))],
        "kept": [e.to_json() for e in entries],
    }


def summary(report: dict) -> str:
    """What a person reads after `closure slim`: a few lines, sizes in KiB/MiB like every command."""
    src, before, after = report["source"], report["before"], report["after"]
    out = report["output"]
    lines = [
        f"closure: slimmed {src['reference'] or src['path']} ({src['format']}, {src['layers']} "
        f"layer{'s' if src['layers'] != 1 else ''}, {src['digest']})",
        f"  before     {before['files']} files, {human_size(before['bytes'])}",
        f"  after      {after['files']} files, {human_size(after['bytes'])}"
        + (f"  ({report['ratio']}x smaller)" if report["ratio"] else ""),
    ]
    if report["removed_dirs"]:
        top = ", ".join(f"{d['path']} {human_size(d['bytes'])}" for d in report["removed_dirs"][:5])
        lines.append(f"  removed    {top}")
    if report["kept_by_reason"]:
        top = ", ".join(f"{g['reason']} {g['files']} ({human_size(g['bytes'])})"
                        for g in report["kept_by_reason"][:6])
        lines.append(f"  kept       {top}")
    for p in report["probes"]:
        lines.append(f"  probe      {p['command']}  ({p['paths']} paths, {p['seconds']:.1f} s)")
    wrote = f"  wrote      {out['path']} ({out['format']})"
    if out["reference"]:
        wrote += f" {out['reference']}"
    if out["format"] != "rootfs":
        wrote += f"  layer {human_size(out['layer_size'])} {out['compression']}"
    lines.append(wrote)
    if out.get("manifest_digest"):
        lines.append(f"  manifest   {out['manifest_digest']}")
    return "\n".join(lines)


__all__ = ["SlimOptions", "SlimResult", "slim", "summary", "build_report", "command_targets"]

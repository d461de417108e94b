"""Build-time probes (`closure build --probe CMD`): run CMD under strace and add what it
touched to the closure, each path with reason `traced` naming the probe.

Where the probe runs: always in closure.sandbox, over the root (the host's /, a --root),
so the programs and files it touches are the root's and whatever it writes or starts
stays in the sandbox; with Options.probe_in_image, over the candidate image instead
(inimage.py).

The shell the probe string runs under is the tracer's harness, not part of the program:
it is the wrapper (its own exec and library loads are left out), so a probe does not drag
/bin/sh into every image. Programs it runs are in; a `#!` script among them goes through
add_target so its interpreter follows (strace never reports an interpreter's load), and
an ELF program's own closure follows through the collector's ELF walk.

The probe's environment is clean and the same everywhere: PATH is the build's PATH (the
one targets are looked up with, not the caller's), HOME a scratch directory in the
sandbox's /tmp on the host root (`/` in another root), plus the environment recipes put in
the image config and the image's own --env.
"""
from __future__ import annotations

import posixpath
import stat

from ..errors import BadInput, ClosureError, JobFailed
from ..model import Reason
from .run import TraceResult
from .select import traced_paths

HELPER_DIR_NAME = "/.closure-probe"  # probe_sandbox.HELPER_DIR, without importing it here
PROBE_TIMEOUT = 600.0       # seconds; a probe that hangs must not hang the build
TAIL_LINES = 6
PROBE_HOME = "/tmp/closure-home"    # HOME and cwd of a host-root probe, in the sandbox's /tmp


def add_probe_results(collector, probe: str) -> None:
    """Run one probe and add what it touched to the collector's closure. Raises JobFailed
    when the probe fails (exit status, signal or timeout)."""
    opts = collector.opts
    if not probe.strip():
        raise BadInput("--probe: empty command: give a shell command that runs the program")
    if opts.probe_in_image:
        from .inimage import probe_in_image
        probe_in_image(collector, probe)
        return
    result, scratch = _run(collector, probe)
    check_passed(probe, result)
    kept, warnings = traced_paths(result.accesses, collector.root, scratch=scratch,
                                  include_secrets=include_secrets(opts), own=collector.own_trees())
    for w in warnings:
        collector.closure.warnings.append(f"probe {probe!r}: {w}")
    reason = Reason("traced", probe=probe)
    pycache = bool(getattr(opts.recipe_vars, "pycache", False))
    for path, kind in kept:
        if "/__pycache__/" in path and not pycache:
            continue                    # bytecode only with --pycache, traced or not
        add_traced(collector, path, kind, reason)
    add_written_parents(collector, result, reason)
    add_ids(collector, result)


def _run(collector, probe: str) -> tuple[TraceResult, tuple[str, ...]]:
    """(the trace, the probe's own scratch paths to leave out). Every probe runs in the
    sandbox over its root (the host's / too): what it writes stays in the sandbox, and
    whatever it starts dies with it."""
    from .probe_sandbox import HELPER_DIR, helper_shell, trace_in_tree
    home = PROBE_HOME if collector.root.path == "/" else "/"
    with helper_shell() as helper:
        result = trace_in_tree(collector.root.path, probe, helper, env=probe_env(collector, home=home),
                               network=collector.opts.probe_network, cwd=home if home != "/" else "/tmp",
                               timeout=PROBE_TIMEOUT)
    return result, (HELPER_DIR,)


def probe_env(collector, home: str) -> dict[str, str]:
    """PATH and HOME, the recipes' env, then the image's own Env (--env wins, as in the image)."""
    env = {"PATH": collector.opts.path, "HOME": home}
    env.update(collector.closure.env)
    env.update(collector.opts.env)
    return env


def include_secrets(opts) -> tuple[str, ...]:
    """Secret paths the user named with --include: a probe may take those."""
    return tuple(src for src, _dest in opts.includes)


def check_passed(probe: str, result: TraceResult) -> None:
    if result.ok:
        return
    raise JobFailed(f"probe {probe!r} {result.describe_status()}{stderr_tail(result)}")


def stderr_tail(result: TraceResult) -> str:
    lines = [ln.strip() for ln in result.stderr_tail.splitlines() if ln.strip()]
    if not lines:
        return " (no stderr)"
    return "; stderr: " + " | ".join(lines[-TAIL_LINES:])


def add_traced(collector, path: str, kind: str, reason: Reason) -> None:
    """Add one traced path as what it was to the program: an executed program (with its
    interpreter or ELF closure), a file, a directory, or a symlink only read as a link."""
    if kind == "exec":
        add_program(collector, path, reason)
    elif kind == "symlink":
        add_link_only(collector, path, reason)
    else:
        collector.add_path(path, reason)


def add_program(collector, path: str, reason: Reason) -> None:
    root = collector.root
    res = root.try_resolve(path)
    if res is None:
        return
    st = root.lstat(res.path)
    if st is None or not stat.S_ISREG(st.st_mode):
        return
    with root.open(res.path) as f:
        script = f.read(2) == b"#!"
    if not script:
        collector.add_path(path, reason)       # an ELF file: the collector walks it
        return
    try:
        collector.add_target(path, reason)      # the #! interpreter follows
    except ClosureError as e:
        collector.add_path(path, reason)
        collector.closure.warnings.append(f"probe {reason.probe!r} ran {path}: {e}")


def add_link_only(collector, path: str, reason: Reason) -> None:
    root = collector.root
    parent = root.try_resolve(posixpath.dirname(path))
    if parent is None:
        return
    for link, target in parent.links:
        collector.add_symlink(link, target, Reason("symlink", by=path))
    link = posixpath.join(parent.path, posixpath.basename(path))
    collector.add_symlink(link, root.readlink(link), reason)


def add_service_results(collector) -> None:
    """`--serve`: run the service in the sandbox over the root, as its image will run it
    (Entrypoint + Cmd, User, Env, WorkingDir), talk to it from outside, and add what its
    own process tree touched (reason `traced`, probe "--serve ...")."""
    from ..sandbox import home_of, lookup_user
    from .probe_sandbox import HELPER_DIR, helper_shell
    from .serve import serve_in

    so = collector.opts.serve
    root = collector.root
    argv: str | tuple[str, ...] = so.command if so.command is not None else service_argv(collector)
    user = lookup_user(root, so.user)
    env = probe_env(collector, home=home_of(root, user.uid) or "/")
    what = argv if isinstance(argv, str) else " ".join(argv)
    with helper_shell() as helper:
        served = serve_in(root.path, argv, so, env=env, cwd=so.workdir or "/", user=user, helper=helper)
    result = served.result
    reason = Reason("traced", probe=f"--serve {what}")
    kept, warnings = traced_paths(result.accesses, root, scratch=(HELPER_DIR,),
                                  include_secrets=include_secrets(collector.opts))
    for w in served.notes + warnings:
        collector.closure.warnings.append(f"service {what!r}: {w}" if not w.startswith("service") else w)
    for path, kind in kept:
        add_traced(collector, path, kind, reason)
    add_written_parents(collector, result, reason)
    add_ids(collector, result)


def service_argv(collector) -> tuple[str, ...]:
    """The image's Entrypoint + Cmd as the build will write them (default: the first target)."""
    so = collector.opts.serve
    entry = so.entrypoint if so.entrypoint is not None else tuple(collector.closure.targets[:1])
    argv = tuple(entry) + tuple(so.cmd or ())
    if not argv:
        raise BadInput("--serve: the image has no Entrypoint or Cmd: give --serve 'CMD'")
    return argv


def add_written_parents(collector, result: TraceResult, reason: Reason) -> None:
    """A file or directory the run created is not image content, but the directory it was
    created in is (nginx's /var/lib/nginx, /var/log/nginx): kept with its owner in the root,
    whose account then joins /etc/passwd."""
    from .select import is_dropped, is_secret
    root = collector.root
    parents = sorted({posixpath.dirname(a.path) for a in result.accesses if a.ok and a.write})
    for parent in parents:
        if is_dropped(parent, (HELPER_DIR_NAME,)) or is_secret(parent):
            continue
        res = root.try_resolve(parent)
        if res is None or not root.is_dir(res.path):
            continue
        st = root.lstat(res.path)
        collector.add_path(parent, reason)
        if (st.st_uid, st.st_gid) != (0, 0):
            collector.add_dir(res.path, stat.S_IMODE(st.st_mode), reason, uid=st.st_uid, gid=st.st_gid)
            collector.closure.accounts |= {("uid", st.st_uid), ("gid", st.st_gid)}


def add_ids(collector, result: TraceResult) -> None:
    """The ids the run switched to or gave files: their accounts join /etc/passwd and /etc/group."""
    collector.closure.accounts |= {("uid", u) for u in result.uids if u != 0}
    collector.closure.accounts |= {("gid", g) for g in result.gids if g != 0}

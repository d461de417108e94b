"""`closure trace`: run a command under strace and show what it touched, and which of
those files static analysis + recipes would not have found on their own."""
from __future__ import annotations

import json
import os
import posixpath
import stat
from typing import List, Optional

import typer

EXAMPLES = """

Examples:

  closure trace -- curl -sI https://localhost:8443     # grouped by directory, sized

  closure trace --json -- python3 -c 'import ssl'       # one JSON document

  closure trace 'cd /etc && cat hostname'               # one argument: /bin/sh -c

  closure trace --failed -- app                         # also list failed lookups

Exit status: 0 when CMD exited 0; 1 when it failed or timed out (the report is still printed); 2 when it could not be traced (no strace, no such command).
"""

JSON_VERSION = 1


def register(app: typer.Typer) -> None:
    @app.command(
        help="Run CMD under strace; list the files it touched, grouped and sized, marking "
             "what static analysis + recipes would include ('static') and what only "
             "tracing found ('traced-only')." + EXAMPLES,
        context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
    )
    def trace(
        cmd: List[str] = typer.Argument(..., metavar="-- CMD...", help="The command (one argument with spaces: a shell string)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
        failed: bool = typer.Option(False, "--failed", help="Also record failed lookups (ENOENT) and list them."),
        timeout: Optional[float] = typer.Option(None, "--timeout", min=0.1, help="Kill the command after S seconds."),
        scratch: Optional[List[str]] = typer.Option(None, "--scratch", help="A directory of the command's own working files, left out (repeatable)."),
        include: Optional[List[str]] = typer.Option(None, "--include", help="Take this secret path anyway (repeatable)."),
        no_static: bool = typer.Option(False, "--no-static", help="Skip the static analysis that marks static / traced-only."),
    ) -> None:
        from ..root import Root
        from ..trace.select import is_dropped, traced_paths
        from .progress import Progress

        root = Root("/")
        command = cmd[0] if len(cmd) == 1 and _looks_like_shell(cmd[0]) else list(cmd)
        shown = command if isinstance(command, str) else " ".join(command)
        with Progress(enabled=not as_json) as progress:
            progress.step(f"tracing {shown[:60]}")
            result = _traced_in_sandbox(command, root, failed, timeout)
            # Relative paths name places below the directory CMD runs in, as CMD sees them.
            kept, warnings = traced_paths(result.accesses, root, scratch=_absolute(scratch),
                                          include_secrets=_absolute(include))
            programs = [p for p, k in kept if k == "exec"]
            static, static_warnings = None, []
            if not no_static:
                progress.step("static analysis of " + " ".join(programs)[:60])
                static, static_warnings = static_paths(programs, root)
        not_found = sorted({a.path for a in result.accesses
                            if not a.ok and not is_dropped(a.path)}) if failed else None
        report = build_report(result, kept, root, static, warnings + static_warnings, not_found)
        for w in report["warnings"]:
            typer.echo(f"closure: warning: {w}", err=True)
        if as_json:
            typer.echo(json.dumps(report, indent=2, sort_keys=True))
        else:
            typer.echo(render(report))
        if not result.ok:
            raise typer.Exit(1)


def _traced_in_sandbox(command, root, failed: bool, timeout):
    """The command runs in closure's sandbox over the host's root, with the caller's
    environment, working directory and network (it may talk to servers on 127.0.0.1):
    what it writes stays in the sandbox and what it starts dies with it."""
    import os
    from ..sandbox import Sandbox, prepared
    from ..trace.run import command_argv, run_probe
    argv = command_argv(command)
    sb = Sandbox("/", tuple(argv), env=dict(os.environ), cwd=os.getcwd(), share_net=True)
    with prepared(sb) as (wrapper, _ctl):
        return run_probe(argv, root, failed=failed, timeout=timeout, stdin=None, wrapper=wrapper)


def _absolute(paths: Optional[List[str]]) -> tuple[str, ...]:
    return tuple(os.path.abspath(p) for p in paths or ())


def _looks_like_shell(arg: str) -> bool:
    return any(c in arg for c in " \t;&|<>$`'\"(){}*?")


def static_paths(programs: list[str], root) -> tuple[frozenset[str] | None, list[str]]:
    """Every image path that static analysis + recipes put in the closure of the executed
    programs. A program that cannot be analysed (a broken script) is skipped with a
    warning rather than sinking the whole report."""
    from ..collect import Options, collect
    from ..errors import ClosureError

    if not programs:
        return frozenset(), []
    opts = Options(root=root)
    try:
        return frozenset(collect(list(programs), opts).entries), []
    except ClosureError:
        pass
    entries: set[str] = set()
    warnings = []
    for p in programs:
        try:
            entries |= set(collect([p], opts).entries)
        except ClosureError as e:
            warnings.append(f"static analysis of {p} failed: {e}")
    return frozenset(entries), warnings


def in_closure(path: str, entries: frozenset[str], root) -> bool:
    """Would this spelling work in an image of those entries: every link on the way and
    the final file present?"""
    r = root.try_resolve(path)
    if r is None:
        return False
    return r.path in entries and all(link in entries for link, _ in r.links)


def group_of(path: str) -> str:
    """Top directory; two levels under /usr, /var and /opt, where one says little."""
    parts = path.strip("/").split("/")
    if len(parts) > 2 and parts[0] in ("usr", "var", "opt"):
        return "/" + "/".join(parts[:2])
    return "/" + parts[0] if len(parts) > 1 else "/"


def build_report(result, kept, root, static, warnings, not_found) -> dict:
    paths = []
    for path, kind in kept:
        resolved = root.resolve(path).path
        st = root.lstat(resolved)
        ftype = "dir" if stat.S_ISDIR(st.st_mode) else "file"
        size = st.st_size if ftype == "file" else 0
        row = {"path": path, "kind": kind, "type": ftype, "size": size, "group": group_of(path)}
        if resolved != path:
            row["resolved"] = resolved
        if static is not None:
            row["static"] = in_closure(path, static, root)
        paths.append(row)

    def total(rows) -> dict:
        seen: set[str] = set()
        nbytes = 0
        for r in rows:
            real = r.get("resolved", r["path"])
            if r["type"] == "file" and real not in seen:
                seen.add(real)
                nbytes += r["size"]
        return {"paths": len(rows), "files": sum(r["type"] == "file" for r in rows), "bytes": nbytes}

    groups = {}
    for g in sorted({r["group"] for r in paths}):
        groups[g] = total([r for r in paths if r["group"] == g])
    kinds = {k: sum(r["kind"] == k for r in paths) for k in sorted({r["kind"] for r in paths})}
    totals = {"all": total(paths)}
    if static is not None:
        totals["static"] = total([r for r in paths if r["static"]])
        totals["traced_only"] = total([r for r in paths if not r["static"]])
    doc = {
        "version": JSON_VERSION,
        "command": list(result.argv),
        "exit_status": result.returncode,
        "signal": result.signal,
        "timed_out": result.timed_out,
        "duration_s": round(result.duration, 3),
        "stderr_tail": result.stderr_tail,
        "programs": result.programs,
        "paths": paths,
        "groups": groups,
        "kinds": kinds,
        "totals": totals,
        "static_checked": static is not None,
        "warnings": sorted(set(warnings)),
    }
    if not_found is not None:
        doc["not_found"] = not_found
    return doc


def render(doc: dict) -> str:
    from ..report import human_size

    lines = []
    t = doc["totals"]["all"]
    status = ("timed out" if doc["timed_out"] else f"killed by {doc['signal']}" if doc["signal"]
              else f"exited {doc['exit_status']}")
    head = (f"{posixpath.basename(doc['command'][0])} {status} in {doc['duration_s']:.2f} s; "
            f"touched {t['paths']} paths, {t['files']} files, {human_size(t['bytes'])}")
    if doc["static_checked"]:
        s, o = doc["totals"]["static"], doc["totals"]["traced_only"]
        head += (f": {s['paths']} static ({human_size(s['bytes'])}), "
                 f"{o['paths']} traced-only ({human_size(o['bytes'])})")
    lines.append(head)
    width = max((len(human_size(r["size"])) for r in doc["paths"]), default=1)
    for g, gt in doc["groups"].items():
        lines.append("")
        lines.append(f"{g}  ({gt['paths']} paths, {human_size(gt['bytes'])})")
        for r in doc["paths"]:
            if r["group"] != g:
                continue
            mark = "" if "static" not in r else ("static" if r["static"] else "traced-only")
            size = human_size(r["size"]) if r["type"] == "file" else "dir"
            arrow = f" -> {r['resolved']}" if "resolved" in r else ""
            lines.append(f"  {r['kind']:<7} {mark:<11} {size:>{width}}  {r['path']}{arrow}")
    lines.append("")
    lines.append("by kind: " + ", ".join(f"{k} {n}" for k, n in doc["kinds"].items()))
    if doc.get("not_found"):
        lines.append("")
        lines.append(f"looked for but not found ({len(doc['not_found'])}):")
        lines += [f"  {m}" for m in doc["not_found"]]
    if doc["exit_status"] != 0 and doc["stderr_tail"].strip():
        lines.append("")
        lines.append("stderr (tail):")
        lines += ["  " + x for x in doc["stderr_tail"].rstrip().splitlines()[-10:]]
    return "\n".join(lines)

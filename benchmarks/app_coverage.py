#!/usr/bin/env python3
"""Static analysis vs a traced run, for apps: what `closure build APP` finds without running
anything, against the files a real run of the app opened or executed (strace, as `closure
trace` records them, the app's own tree under /tmp kept). Prints, per app, the traced files
and bytes the static closure covers, and lists every traced file it lacks (and how many
static files the run did not touch). Bytecode (__pycache__/*.pyc) is counted apart: closure
leaves it out by design unless --pycache.

Usage: python3 benchmarks/app_coverage.py [--json]
  needs: a venv with flask, requests, numpy and an Express app; made here under $TMPDIR
  (pip and npm from their registries), as the tests make them.

Importable: coverage(targets, command, cwd) -> dict, used by tests/integration.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def coverage(targets: list[str], command, cwd: str, timeout: float = 120.0,
             includes: tuple = (), harness: tuple[str, ...] = ()) -> dict:
    """command: an argv list, or a shell string whose shell and `harness` programs (a
    sleep between start and request) are the test's, not the app's, and are left out."""
    from closure.collect import Collector, Options
    from closure.root import Root
    from closure.trace.run import run_probe
    from closure.trace.select import traced_paths

    root = Root("/")
    c = Collector(Options(root=root, includes=includes))
    for t in targets:
        c.closure.targets.append(c.add_target(t))
    c.add_includes()
    c.run()
    own = c.own_trees()
    closure = c.finish()
    static: set[str] = set()
    for e in closure.entries.values():
        if e.type == "file":
            static.add(e.source or e.path)
            r = root.try_resolve(e.path)
            if r is not None:
                static.add(r.path)
    with tempfile.TemporaryDirectory(prefix="closure-cov-") as scratch:
        result = run_probe(command, root, timeout=timeout, cwd=cwd,
                           env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": scratch})
        if not result.ok:
            raise RuntimeError(f"traced run failed: {command}: {result.stderr_tail[-500:]}")
        kept, _ = traced_paths(result.accesses, root, scratch=(scratch,), own=own)
    left_out = set()
    for prog in (("sh",) if isinstance(command, str) else ()) + harness:
        found = shutil.which(prog)
        if found:
            left_out.add(root.resolve(found).path)
    traced: dict[str, int] = {}
    bytecode = 0
    for path, kind in kept:
        if kind not in ("file", "exec"):
            continue
        real = root.resolve(path).path
        size = root.lstat(real).st_size
        if real in left_out:
            continue
        if real.endswith(".pyc"):
            bytecode += size
            continue
        traced[real] = size
    lacking = sorted(p for p in traced if p not in static)
    total = sum(traced.values())
    covered = total - sum(traced[p] for p in lacking)
    return {
        "targets": targets, "command": command if isinstance(command, str) else " ".join(command),
        "static_files": len({p for p in static if not p.endswith(".pyc")}),
        "static_bytes": closure.total_bytes,
        "traced_files": len(traced), "traced_bytes": total,
        "covered_files": len(traced) - len(lacking), "covered_bytes": covered,
        "byte_coverage": covered / total if total else 1.0,
        "missing": [(p, traced[p]) for p in lacking],
        "static_only_files": len([p for p in static if p not in traced and not p.endswith(".pyc")]),
        "bytecode_traced_bytes": bytecode,
        "warnings": closure.warnings,
    }


def _apps(tmp: str) -> list[tuple[str, list[str], str, str]]:
    """(name, targets, traced command, cwd) for each app that can be made here."""
    out = []
    base = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    venv = os.path.join(tmp, ".venv")
    ok = subprocess.run([base, "-m", "venv", venv]).returncode == 0 and subprocess.run(
        [f"{venv}/bin/pip", "install", "-q", "flask", "requests", "numpy"]).returncode == 0
    if ok:
        sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
        from conftest import EXPRESS_APP, FLASK_APP, NUMPY_APP
        for name, text in (("flask_app.py", FLASK_APP), ("numpy_app.py", NUMPY_APP)):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        out.append(("flask", [f"{tmp}/flask_app.py"], FLASK_REQUEST(venv), tmp))
        out.append(("numpy", [f"{tmp}/numpy_app.py"], [f"{venv}/bin/python", "numpy_app.py"], tmp))
    if shutil.which("npm") and shutil.which("node"):
        from conftest import EXPRESS_APP
        d = os.path.join(tmp, "express")
        os.makedirs(d)
        with open(os.path.join(d, "package.json"), "w") as f:
            f.write('{"name": "t", "version": "1.0.0", "main": "server.js"}\n')
        with open(os.path.join(d, "server.js"), "w") as f:
            f.write(EXPRESS_APP)
        if subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "express"], cwd=d).returncode == 0:
            out.append(("express", [d], express_command(d, 18931), d))
    return out


def FLASK_REQUEST(venv: str) -> list[str]:  # noqa: N802
    """Import the app and serve one request through Flask's test client (the whole
    request path: routing, JSON, werkzeug), no socket needed."""
    return [f"{venv}/bin/python", "-c",
            "import flask_app; r = flask_app.app.test_client().get('/'); assert r.json['ok']; print(r.json)"]


def express_command(d: str, port: int) -> str:
    """Start the server, GET / with node's own http client, stop the server."""
    get = (f"require('http').get('http://127.0.0.1:{port}/', r => {{ r.resume(); "
           "r.on('end', () => process.exit(r.statusCode === 200 ? 0 : 1)); })")
    return (f"node server.js {port} & P=$!; for i in 1 2 3 4 5 6 7 8 9 10; do "
            f"node -e \"{get}\" && break; sleep 0.3; done; S=$?; kill $P; wait $P; exit $S")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="closure-apps-") as tmp:
        rows = []
        for name, targets, cmd, cwd in _apps(tmp):
            r = coverage(targets, cmd, cwd, harness=("sleep",))
            r["app"] = name
            rows.append(r)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['app']:8} static {r['static_files']:5} files {r['static_bytes'] / 1e6:7.1f} MB | traced "
              f"{r['traced_files']:4} files {r['traced_bytes'] / 1e6:6.1f} MB | covered "
              f"{r['covered_files']:4} files, {100 * r['byte_coverage']:6.2f}% of the bytes"
              f" | static-only {r['static_only_files']} files")
        for p, size in r["missing"]:
            print(f"           traced, not found statically: {p} ({size} B)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

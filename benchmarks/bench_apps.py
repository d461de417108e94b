#!/usr/bin/env python3
"""Image sizes of apps built by closure (found statically, no probes) against the natural
alternative for each: a Debian minbase root plus the runtime's packages plus the app's own
tree — what `python:3.11-slim` + a venv, `node:slim` + node_modules or a JRE image hold.

Usage: python3 benchmarks/bench_apps.py [--json]
  Apps are made under $TMPDIR as the tests make them (a venv with flask, requests, numpy
  from PyPI; an Express app from npm; a compiled Java class); one is left out when its
  tools are missing. The alternative's size is computed from this machine's apt metadata
  (Installed-Size of every package of Priority required, plus the Depends/Pre-Depends
  closure of the runtime package, each package once) plus the app's files as installed;
  closure's is the content bytes and the gzip layer of `closure build APP -o x.tar`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))


def closure_cmd() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "closure")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "closure.cli.app"]


def apt_packages() -> dict[str, dict]:
    """name -> {size (bytes), deps, priority} from the local apt cache (`apt-cache
    dumpavail`: the candidate stanza of each package, read locally)."""
    out: dict[str, dict] = {}
    text = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True).stdout
    if True:
        if True:
            for stanza in text.split("\n\n"):
                fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", stanza, re.M))
                name = fields.get("Package")
                if not name or name in out or fields.get("Architecture") not in ("amd64", "all"):
                    continue
                deps = []
                for key in ("Depends", "Pre-Depends"):
                    for alt in fields.get(key, "").split(","):
                        first = alt.split("|")[0].strip().split(" ")[0].split(":")[0]
                        if first:
                            deps.append(first)
                out[name] = {"size": int(fields.get("Installed-Size", "0")) * 1024, "deps": deps,
                             "priority": fields.get("Priority", "")}
                for p in re.findall(r"([a-z0-9.+-]+)", fields.get("Provides", "")):
                    out.setdefault(p, {"size": 0, "deps": [name], "priority": ""})
    return out


def closure_of(pkgs: dict, names) -> set[str]:
    seen, stack = set(), list(names)
    while stack:
        n = stack.pop()
        if n in seen or n not in pkgs:
            continue
        seen.add(n)
        stack += pkgs[n]["deps"]
    return seen


def tree_bytes(d: str) -> int:
    total = 0
    for dp, _, files in os.walk(d):
        for f in files:
            p = os.path.join(dp, f)
            if os.path.isfile(p) and not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def build(args: list[str], out: str) -> dict:
    p = subprocess.run(closure_cmd() + ["build", *args, "-o", out, "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr)
    return json.loads(p.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from conftest import EXPRESS_APP, FLASK_APP, JAVA_FETCH, NUMPY_APP
    pkgs = apt_packages()
    minbase = closure_of(pkgs, [n for n, p in pkgs.items() if p["priority"] == "required"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="closure-bench-apps-") as tmp:
        base = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        venv = os.path.join(tmp, ".venv")
        if subprocess.run([base, "-m", "venv", venv]).returncode == 0 and subprocess.run(
                [f"{venv}/bin/pip", "install", "-q", "flask", "requests", "numpy"]).returncode == 0:
            for name, text in (("flask", FLASK_APP), ("numpy", NUMPY_APP)):
                with open(f"{tmp}/{name}_app.py", "w") as f:
                    f.write(text)
                rows.append((name, [f"{tmp}/{name}_app.py"], ["python3", "python3-venv"], tree_bytes(venv)))
        if shutil.which("npm") and shutil.which("node"):
            d = os.path.join(tmp, "express")
            os.makedirs(d)
            with open(f"{d}/package.json", "w") as f:
                f.write('{"name": "t", "version": "1.0.0", "main": "server.js"}\n')
            with open(f"{d}/server.js", "w") as f:
                f.write(EXPRESS_APP)
            if subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "express"], cwd=d).returncode == 0:
                rows.append(("express", [d], ["nodejs"], tree_bytes(d)))
        if shutil.which("javac"):
            d = os.path.join(tmp, "java")
            os.makedirs(d)
            with open(f"{d}/Fetch.java", "w") as f:
                f.write(JAVA_FETCH)
            if subprocess.run(["javac", "-d", d, f"{d}/Fetch.java"]).returncode == 0:
                rows.append(("java", ["java", "--include", f"{d}:/app"], ["default-jre-headless"], tree_bytes(d)))
        results = []
        for name, bargs, runtime_pkgs, app_bytes in rows:
            s = build(bargs, os.path.join(tmp, f"{name}.tar"))
            alt_pkgs = minbase | closure_of(pkgs, runtime_pkgs)
            alt = sum(pkgs[n]["size"] for n in alt_pkgs) + app_bytes
            results.append({"app": name, "closure_bytes": s["content_bytes"], "closure_layer": s["layer_size"],
                            "alternative": f"Debian minbase + {' + '.join(runtime_pkgs)} + the app's tree",
                            "alternative_bytes": alt, "ratio": alt / s["content_bytes"]})
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(f"{r['app']:8} closure {r['closure_bytes'] / 1e6:7.1f} MB ({r['closure_layer'] / 1e6:5.1f} MB gzip) | "
              f"{r['alternative']}: {r['alternative_bytes'] / 1e6:7.1f} MB | {r['ratio']:.1f}x smaller")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Apps as targets: a Python script or package dir, a Node app dir or .js file, a .jar.

An App names its kind, the runtime that runs it (from --runtime, the venv the script sits
in, or the runtime's usual name on PATH) and the entrypoint to give the image.
"""
from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass

from ..errors import BadInput
from ..root import Root
from .pypath import read

PY_SUFFIXES = (".py",)
NODE_SUFFIXES = (".js", ".mjs", ".cjs")
RUNTIME_NAMES = {"python": "python3", "node": "node", "jvm": "java"}


@dataclass(frozen=True)
class App:
    kind: str                  # python | node | jvm
    main: str                  # the file the runtime runs first (image path)
    runtime: str               # the interpreter (image path or a name for PATH)
    args: tuple[str, ...]      # the entrypoint after the runtime
    top: str | None = None     # the app's own directory, for a directory target


def kind_of_interpreter(path: str) -> str | None:
    base = posixpath.basename(path)
    if re.fullmatch(r"python(\d+(\.\d+)?)?", base):
        return "python"
    if base in ("node", "nodejs"):
        return "node"
    return None


def detect(root: Root, path: str, is_dir: bool, runtime: str | None) -> App | None:
    """The App that `path` is, None for a file that is no app (the caller says why)."""
    if is_dir:
        return _dir_app(root, path, runtime)
    if path.endswith(PY_SUFFIXES):
        return App("python", path, runtime or _venv_python(root, path) or "python3", (path,))
    if path.endswith(NODE_SUFFIXES):
        return App("node", path, runtime or "node", (path,))
    if path.endswith(".jar"):
        return App("jvm", path, runtime or "java", ("-jar", path))
    return None


def _dir_app(root: Root, d: str, runtime: str | None) -> App:
    pkg = posixpath.join(d, "package.json")
    if root.is_file(pkg):
        main = node_main(root, d)
        if main is None:
            raise BadInput(f"{d}: package.json names no main, bin or exports file that exists")
        return App("node", main, runtime or "node", (main,), top=d)
    if root.is_file(posixpath.join(d, "__main__.py")):
        return App("python", posixpath.join(d, "__main__.py"), runtime or _venv_python(root, d) or "python3",
                   (d,), top=d)
    raise BadInput(f"{d}: is a directory, not a program or an app (no package.json, no __main__.py)")


def node_main(root: Root, d: str) -> str | None:
    """The file `node DIR` (or the package's bin) runs: bin, main, exports['.'], index.js."""
    try:
        doc = json.loads(read(root, posixpath.join(d, "package.json")) or b"")
    except ValueError:
        raise BadInput(f"{d}/package.json: not valid JSON") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{d}/package.json: not a JSON object")
    cands = []
    b = doc.get("bin")
    if isinstance(b, str):
        cands.append(b)
    elif isinstance(b, dict):
        cands += [v for _, v in sorted(b.items()) if isinstance(v, str)]
    if isinstance(doc.get("main"), str):
        cands.append(doc["main"])
    exp = doc.get("exports")
    if isinstance(exp, dict):
        exp = exp.get(".", exp)
    while isinstance(exp, dict):
        exp = next((exp[k] for k in ("node", "require", "import", "default") if k in exp), None)
    if isinstance(exp, str):
        cands.append(exp)
    cands.append("index.js")
    for c in cands:
        p = posixpath.normpath(posixpath.join(d, c))
        for cand in (p, p + ".js", posixpath.join(p, "index.js")):
            if root.is_file(cand):
                return cand
    return None


def _venv_python(root: Root, start: str) -> str | None:
    """The python of the venv an app sits in or beside: pyvenv.cfg in a parent directory,
    or in its .venv/ or venv/ subdirectory."""
    d = posixpath.dirname(start)
    while True:
        for cand in (d, posixpath.join(d, ".venv"), posixpath.join(d, "venv")):
            exe = posixpath.join(cand, "bin", "python")
            if root.is_file(posixpath.join(cand, "pyvenv.cfg")) and root.exists(exe):
                return exe
        if d == "/":
            return None
        d = posixpath.dirname(d)

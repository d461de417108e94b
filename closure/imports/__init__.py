"""Static import graphs of interpreted apps (Python, Node) and the JVM's module needs.

Each analyser reads files only through the Root, never runs the runtime it analyses, and
hands back image paths with who imported them; `add_app_files` puts them in the closure
with reason kind `import` (by: the importing file, name: the module).
"""
from __future__ import annotations

from ..model import Reason
from .app import App, detect, kind_of_interpreter

__all__ = ["App", "add_app_files", "detect", "kind_of_interpreter"]


def add_app_files(collector, app: App) -> None:
    """Analyse one app and add what it imports (C extensions and .node addons are walked
    as ELF by the collector)."""
    root = collector.root
    if app.kind == "python":
        from .pypath import python_env
        from .python import PythonImports
        env = python_env(root, app.runtime)
        if env is None:
            collector.closure.warnings.append(f"{app.runtime}: no Python stdlib found; imports of {app.main} not followed")
            return
        if env.venv:
            collector.add_path(f"{env.venv}/pyvenv.cfg", Reason("import", by=app.runtime, name="pyvenv.cfg"))
        pycache = bool(getattr(collector.opts.recipe_vars, "pycache", False))
        found = PythonImports(root, env, pycache=pycache).analyse([app.main])
    elif app.kind == "node":
        from .node import NodeImports
        found = NodeImports(root).analyse([app.main])
    else:
        return
    skip = tuple(src.rstrip("/") + "/" for src, _ in collector.opts.app_dirs)
    for path, (by, name) in found.files.items():
        if path == app.main or path.startswith(skip):
            continue
        collector.add_path(path, Reason("import", by=by or app.main, name=name))
    for link, target in getattr(found, "links", {}).items():
        collector.add_symlink(link, target, Reason("import", by=app.main, name=link))
    for w in found.warnings:
        if w not in collector.closure.warnings:
            collector.closure.warnings.append(w)

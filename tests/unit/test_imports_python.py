"""Python's import graph on a synthetic root: sys.path from pyvenv.cfg and the layout, the
venv's own .pth only, packages, namespace packages, relative and constant dynamic imports,
lazy imports, TYPE_CHECKING, dist-info, data dirs; and no interpreter is ever run."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from closure.collect import Options, collect
from closure.imports.pypath import python_env
from closure.recipes.vars import RecipeVars
from closure.root import Root

MARKER_SCRIPT = "#!/bin/sh\ntouch {marker}\necho '{{}}'\n"


def write(root: Path, rel: str, text: str = "") -> Path:
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


@pytest.fixture
def fake(tmp_path) -> tuple[Path, Path]:
    """A root with a 'python3.11' that would write a marker if run, its stdlib, a stray .pth
    in the system site dir, and a venv at /app/.venv with packages."""
    root, marker = tmp_path / "root", tmp_path / "RAN"
    exe = write(root, "/usr/bin/python3.11", MARKER_SCRIPT.format(marker=marker))
    exe.chmod(0o755)
    write(root, "/usr/lib/python3.11/os.py")
    write(root, "/usr/lib/python3.11/site.py", 'x = "dist-packages"\n')
    write(root, "/usr/lib/python3.11/json/__init__.py", "from .decoder import x\n")
    write(root, "/usr/lib/python3.11/json/decoder.py")
    write(root, "/usr/lib/python3.11/_sysconfigdata__x86_64-linux-gnu.py",
          "build_time_vars = {'EXT_SUFFIX': '.cpython-311-x86_64-linux-gnu.so'}\n")
    write(root, "/usr/lib/python3/dist-packages/stray.pth", "/usr/lib/python3/dist-packages/strays\n")
    write(root, "/usr/lib/python3/dist-packages/hostonly.py")
    write(root, "/app/.venv/pyvenv.cfg", "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n")
    (root / "app/.venv/bin").mkdir(parents=True)
    os.symlink("/usr/bin/python3.11", root / "app/.venv/bin/python")
    site = "/app/.venv/lib/python3.11/site-packages"
    write(root, f"{site}/own.pth", "extra\nimport boot\n")
    write(root, f"{site}/boot.py", "import os\n")
    write(root, f"{site}/extra/fromextra.py")
    write(root, f"{site}/pkga/__init__.py", "\n".join([
        "from . import sub", "from .sub import thing", "from .. import nothing_above",
        "import importlib", "importlib.import_module('pkga.dyn')",
        "from typing import TYPE_CHECKING",
        "if TYPE_CHECKING:", "    import typedonly",
        "def later():", "    import lazydep", "    import optional", "    from . import lazysub",
        "try:", "    import guarded", "except ImportError:", "    import json", ""]))
    write(root, f"{site}/pkga/sub.py", "from ns import mod\n")
    write(root, f"{site}/pkga/dyn.py")
    write(root, f"{site}/pkga/lazysub.py")
    write(root, f"{site}/pkga/unused.py")
    write(root, f"{site}/pkga/py.typed")
    write(root, f"{site}/pkga/templates/page.html", "<p>")
    write(root, f"{site}/pkga/tests/test_x.py")
    write(root, f"{site}/pkga-1.0.dist-info/METADATA",
          "Name: pkga\nRequires-Dist: lazydep>=1\nRequires-Dist: optional; extra == 'x'\n\nbody\n")
    write(root, f"{site}/pkga-1.0.dist-info/RECORD", "pkga/__init__.py,,\npkga/sub.py,,\n")
    write(root, f"{site}/lazydep/__init__.py")
    write(root, f"{site}/lazydep-2.0.dist-info/METADATA", "Name: lazydep\n")
    write(root, f"{site}/lazydep-2.0.dist-info/top_level.txt", "lazydep\n")
    write(root, f"{site}/optional/__init__.py")
    write(root, f"{site}/optional-1.0.dist-info/top_level.txt", "optional\n")
    write(root, f"{site}/typedonly/__init__.py")
    write(root, f"{site}/guarded/__init__.py")
    write(root, f"{site}/ns/mod.py")
    write(root, f"{site}/unrelated/__init__.py")
    write(root, "/app/main.py", "import json, pkga, fromextra, helper\nimport importlib\n"
          "name = 'x'\nimportlib.import_module(name)\n")
    write(root, "/app/helper.py", "import sys\n")
    write(root, "/app/templates/index.html", "<h1>")
    write(root, "/app/notes/todo.txt", "not the app's")
    return root, marker


def test_sys_path_comes_from_files(fake):
    root, marker = fake
    env = python_env(Root(str(root)), "/app/.venv/bin/python")
    site = "/app/.venv/lib/python3.11/site-packages"
    assert env.venv == "/app/.venv" and env.version == "3.11" and env.stdlib == "/usr/lib/python3.11"
    assert env.site == (site,)          # include-system-site-packages = false
    assert env.path == ("/usr/lib/python311.zip", "/usr/lib/python3.11", site, f"{site}/extra")
    assert env.pth == (f"{site}/own.pth",)
    assert env.ext_suffixes[0] == ".cpython-311-x86_64-linux-gnu.so"
    assert not marker.exists()


def test_the_import_graph_of_an_app_in_a_venv(fake):
    root, marker = fake
    c = collect(["/app/main.py"], Options(root=Root(str(root)), recipes=False))
    site = "/app/.venv/lib/python3.11/site-packages"
    have = set(c.entries)
    for p in ("/app/main.py", "/app/helper.py", "/app/.venv/pyvenv.cfg", f"{site}/own.pth",
              f"{site}/boot.py", f"{site}/extra/fromextra.py", f"{site}/pkga/__init__.py",
              f"{site}/pkga/sub.py", f"{site}/pkga/dyn.py", f"{site}/pkga/lazysub.py",
              f"{site}/ns/mod.py", f"{site}/pkga/templates/page.html", f"{site}/pkga/py.typed",
              f"{site}/pkga-1.0.dist-info/METADATA", f"{site}/pkga-1.0.dist-info/RECORD",
              f"{site}/lazydep/__init__.py", f"{site}/lazydep-2.0.dist-info/METADATA",
              "/usr/lib/python3.11/json/decoder.py", "/app/.venv/bin/python", "/usr/bin/python3.11",
              "/app/templates/index.html"):
        assert p in have, p
    for p in (f"{site}/pkga/unused.py", f"{site}/unrelated/__init__.py", f"{site}/typedonly/__init__.py",
              f"{site}/optional/__init__.py", f"{site}/pkga/tests/test_x.py", f"{site}/guarded/__init__.py",
              "/usr/lib/python3/dist-packages/stray.pth", "/usr/lib/python3/dist-packages/hostonly.py",
              "/app/notes/todo.txt"):
        assert p not in have, p
    why = c.entries[f"{site}/pkga/sub.py"].reasons
    assert why == [type(why[0])("import", by=f"{site}/pkga/__init__.py", name="pkga.sub")]
    assert c.entries["/app/.venv/bin/python"].reasons[0].kind == "runtime"
    assert c.entrypoint == ["/app/.venv/bin/python", "/app/main.py"]
    assert any(w.startswith("/app/main.py:4: import_module(name)") for w in c.warnings), c.warnings
    assert not marker.exists()


def test_pycache_only_when_asked(fake):
    root, _ = fake
    site = "/app/.venv/lib/python3.11/site-packages"
    write(root, f"{site}/pkga/__pycache__/sub.cpython-311.pyc", "x")
    pyc = f"{site}/pkga/__pycache__/sub.cpython-311.pyc"
    assert pyc not in collect(["/app/main.py"], Options(root=Root(str(root)), recipes=False)).entries
    c = collect(["/app/main.py"], Options(root=Root(str(root)), recipes=False,
                                          recipe_vars=RecipeVars(pycache=True)))
    assert pyc in c.entries


CLI = [sys.executable, "-m", "closure.cli.app"]


@pytest.mark.parametrize("name", ["python3.11", "perl"])
def test_analysis_never_runs_the_interpreter_it_analyses(tmp_path, name):
    """A 'python3.11' or 'perl' (and a script naming it in #!) that would write a marker:
    the recipes read the layout instead of asking the program."""
    marker = tmp_path / "RAN"
    exe = write(tmp_path, f"/opt/x/bin/{name}", MARKER_SCRIPT.format(marker=marker))
    exe.chmod(0o755)
    write(tmp_path, "/opt/x/lib/python3.11/os.py")
    write(tmp_path, "/opt/x/lib/perl5/strict.pm")
    script = write(tmp_path, "/opt/x/app", f"#!{exe}\nprint 1\n")
    script.chmod(0o755)
    for target in (str(exe), str(script)):
        p = subprocess.run(CLI + ["analyze", target, "--json"], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    assert not marker.exists()


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs Debian's python3")
def test_python_paths_from_files_match_the_interpreter():
    """The layout's answer equals what the real interpreter says about itself (asked here,
    by the test, not by closure)."""
    code = ("import sys, sysconfig, site, json; print(json.dumps([sysconfig.get_path('stdlib'), "
            "[p for p in sys.path if p.endswith('lib-dynload')][0], site.getsitepackages()]))")
    import json
    stdlib, dynload, site = json.loads(subprocess.run(["/usr/bin/python3", "-I", "-c", code],
                                                      capture_output=True, text=True).stdout)
    env = python_env(Root("/"), "/usr/bin/python3")
    assert env.stdlib == stdlib and env.dynload == dynload
    assert list(env.site) == [s for s in site if os.path.isdir(s)]


@pytest.mark.skipif(shutil.which("perl") is None, reason="needs perl")
def test_perl_inc_from_files_is_perls_own_order():
    from closure.recipes import probes as P
    from tests.unit.test_recipes_probes import ctx
    real = subprocess.run(["perl", "-e", 'print join "\\n", @INC'], capture_output=True, text=True).stdout.split()
    got = P.perl_inc(ctx(shutil.which("perl")))
    assert got["inc"] == [d for d in real if os.path.isdir(d)]


def test_hostile_sources_are_warnings_not_tracebacks(fake):
    root, _ = fake
    write(root, "/app/main.py", "import deep, broken, nul\n")
    write(root, "/app/deep.py", "x = " + "(" * 5000 + ")" * 5000 + "\n")
    write(root, "/app/broken.py", "def (:\n")
    (root / "app/nul.py").write_bytes(b"import os\x00\n")
    os.mkfifo(root / "app/.venv/lib/python3.11/site-packages/fifo.pth")
    c = collect(["/app/main.py"], Options(root=Root(str(root)), recipes=False))
    assert {"/app/deep.py", "/app/broken.py", "/app/nul.py"} <= set(c.entries)
    bad = [w for w in c.warnings if "cannot parse" in w]
    assert len(bad) == 3, c.warnings


def test_a_package_dir_with_main_is_an_app(fake):
    root, _ = fake
    write(root, "/app/tool/__main__.py", "import cli\n")   # python DIR: sys.path[0] is DIR
    write(root, "/app/tool/__init__.py")
    write(root, "/app/tool/cli.py", "import pkga\n")
    c = collect(["/app/tool"], Options(root=Root(str(root)), recipes=False))
    assert c.entrypoint == ["/app/.venv/bin/python", "/app/tool"] and c.workdir == "/app/tool"
    assert "/app/.venv/lib/python3.11/site-packages/pkga/__init__.py" in c.entries

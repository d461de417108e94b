"""Static analysis vs a traced run (issue 13's report): for each app, the files `closure
build APP` finds without running anything cover >= 99% of the bytes a real run opened or
executed; the differences are printed (pytest -s shows them)."""
from __future__ import annotations

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
from app_coverage import FLASK_REQUEST, coverage, express_command  # noqa: E402

pytestmark = pytest.mark.strace


def check(r: dict) -> None:
    print(f"\n{r['targets'][0]}: traced {r['traced_files']} files {r['traced_bytes']} B, static covers "
          f"{r['covered_files']} files, {100 * r['byte_coverage']:.2f}% of the bytes")
    for p, size in r["missing"]:
        print(f"  traced, not found statically: {p} ({size} B)")
    assert r["traced_files"] > 10 and r["byte_coverage"] >= 0.99, r["missing"]


def test_python_apps_static_covers_the_traced_run(py_apps):
    if shutil.which("strace") is None:
        pytest.skip("needs strace")
    venv = str(py_apps / ".venv")
    check(coverage([str(py_apps / "flask_app.py")], FLASK_REQUEST(venv), str(py_apps)))
    check(coverage([str(py_apps / "numpy_app.py")], [f"{venv}/bin/python", "numpy_app.py"], str(py_apps)))


def test_express_app_static_covers_the_traced_run(express_app):
    if shutil.which("strace") is None:
        pytest.skip("needs strace")
    check(coverage([str(express_app)], express_command(str(express_app), 18941), str(express_app),
                   harness=("sleep",)))

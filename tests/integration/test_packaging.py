"""The wheel a user installs: named closure-images, the `closure` command, every recipe
and template, py.typed and the license inside."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_holds_the_recipes_typing_marker_and_license(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    (wheel,) = tmp_path.glob("closure_images-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in (REPO / "recipes").glob("*.toml"):
        assert f"closure/data/recipes/{f.name}" in names, f.name
    for f in (REPO / "recipes" / "templates").glob("*.j2"):
        assert f"closure/data/recipes/templates/{f.name}" in names, f.name
    assert "closure/py.typed" in names and "closure/__main__.py" in names
    dist = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    meta = zipfile.ZipFile(wheel).read(f"{dist}/METADATA").decode()
    assert "Name: closure-images" in meta and "License-Expression: Apache-2.0" in meta
    assert f"{dist}/licenses/LICENSE" in names
    entry = zipfile.ZipFile(wheel).read(f"{dist}/entry_points.txt").decode()
    assert "closure = closure.cli.app:main" in entry

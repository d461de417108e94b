"""The Python API: closure.build() gives the image `closure build` gives, digest for digest;
bad options raise BadInput before anything is written."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import closure
from closure.errors import BadInput
from closure.image.validate import validate

REPO = Path(__file__).resolve().parents[2]


def test_build_is_the_cli_digest_for_digest(tmp_path):
    result = closure.build(["/usr/bin/curl"], str(tmp_path / "api.tar"), tag="tools/curl:8",
                           env=["LANG=C.UTF-8"], label=["org.example=1"], compression="zstd")
    p = subprocess.run([sys.executable, "-m", "closure", "build", "/usr/bin/curl", "-o", str(tmp_path / "cli.tar"),
                        "-t", "tools/curl:8", "-e", "LANG=C.UTF-8", "--label", "org.example=1",
                        "--compression", "zstd", "--json"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 0, p.stderr
    cli = json.loads(p.stdout)
    assert result.manifest_digest == cli["manifest_digest"] and result.reference == "tools/curl:8"
    assert result.to_json()["layer_digest"] == cli["layer_digest"]
    assert validate(str(tmp_path / "api.tar")) == []


@pytest.mark.parametrize("options, match", [
    ({"tagg": "x"}, "unknown key 'tagg'"),
    ({"no_recipes": "yes"}, "no_recipes must be true or false"),
    ({"level": "fast"}, "level must be an integer"),
])
def test_bad_options_raise_bad_input_and_write_nothing(tmp_path, options, match):
    with pytest.raises(BadInput, match=match):
        closure.build(["/usr/bin/true"], str(tmp_path / "x.tar"), **options)
    assert not (tmp_path / "x.tar").exists()

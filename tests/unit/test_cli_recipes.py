"""`closure recipes list|show` as a user runs them."""
from __future__ import annotations

import json
import subprocess
import sys

CLI = [sys.executable, "-m", "closure.cli.app"]


def run(*args):
    return subprocess.run(CLI + list(args), capture_output=True, text=True)


def test_list_and_json(tmp_path):
    p = run("recipes", "list")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "TRIGGER"]
    names = [l.split()[0] for l in lines[1:]]
    assert names == sorted(names) and {"glibc", "openssl", "python", "tzdata"} <= set(names)
    (tmp_path / "openssl.toml").write_text('description = "mine"\n[trigger]\nsonames = ["libssl.so.3"]\n')
    doc = json.loads(run("recipes", "list", "--json", "--recipes", str(tmp_path)).stdout)
    mine = next(r for r in doc["recipes"] if r["name"] == "openssl")
    assert not mine["builtin"] and mine["overrides"].endswith("recipes/openssl.toml")
    assert mine["trigger"] == {"sonames": ["libssl.so.3"]}


def test_show_text_json_override_and_errors(tmp_path):
    p = run("recipes", "show", "openssl")
    assert p.returncode == 0 and p.stdout.startswith("# recipe openssl: ") and "[trigger]" in p.stdout
    doc = json.loads(run("recipes", "show", "glibc", "--json").stdout)
    assert doc["name"] == "glibc" and doc["builtin"] and doc["overrides"] is None
    assert doc["trigger"] == {"sonames": ["libc.so.6"]}
    (tmp_path / "glibc.toml").write_text('description = "my glibc"\n')
    p = run("recipes", "show", "glibc", "--recipes", str(tmp_path))
    assert "# overrides the built-in " in p.stdout and 'description = "my glibc"' in p.stdout
    p = run("recipes", "show", "nope")
    assert p.returncode == 2 and p.stderr.startswith("closure: error: no recipe named 'nope'")
    (tmp_path / "bad.toml").write_text('description = "x"\n[[add]]\npth = "/x"\n')
    p = run("recipes", "list", "--recipes", str(tmp_path))
    assert p.returncode == 2 and "bad.toml: unknown key 'add[1].pth'" in p.stderr
    assert p.stderr.count("\n") == 1 and p.stdout == ""
    p = run("recipes", "list", "--recipes", str(tmp_path / "missing"))
    assert p.returncode == 2 and "not a directory" in p.stderr

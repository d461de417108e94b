"""`closure analyze` as a user runs it: the JSON contract, tree, exit codes, bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "closure.cli.app"]


def run(*args, **kw):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, **kw)


def test_json_contract_for_curl():
    p = run("analyze", "/usr/bin/curl", "--json", "--no-recipes")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)  # one document
    assert doc["root"] == "/" and doc["targets"] == ["/usr/bin/curl"]
    by_path = {e["path"]: e for e in doc["entries"]}
    assert by_path["/usr/bin/curl"]["reasons"] == [{"kind": "target"}]
    assert by_path["/usr/bin/curl"]["type"] == "file" and by_path["/usr/bin/curl"]["mode"] == "0755"
    interp = by_path["/lib64/ld-linux-x86-64.so.2"] if "/lib64/ld-linux-x86-64.so.2" in by_path else None
    interp = interp or next(e for e in doc["entries"] if any(r["kind"] == "interp" for r in e["reasons"]))
    assert interp["type"] == "symlink"
    curl4 = next(e for e in doc["entries"] if any(r.get("name") == "libcurl.so.4" for r in e["reasons"]))
    assert curl4["type"] == "symlink" and curl4["target"].startswith("libcurl.so.4.")
    assert doc["missing"] == []
    assert {"kind", "by", "name"} >= set(curl4["reasons"][0])


def test_tree_looks_like_lddtree():
    p = run("analyze", "/usr/bin/curl", "--tree", "--no-recipes")
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert lines[0].startswith("/usr/bin/curl (interpreter => ")
    assert any(line.startswith("    libcurl.so.4 => ") for line in lines)
    assert any(line.startswith("        libssl.so.3 => ") for line in lines)


def test_table_has_totals():
    p = run("analyze", "/usr/bin/true", "--no-recipes")
    assert p.returncode == 0
    assert p.stdout.splitlines()[-1].startswith("total: ")
    assert "/usr/bin/true" in p.stdout


@pytest.fixture
def bad_inputs(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "random").write_bytes(os.urandom(4096).replace(b"#!", b"xx").replace(b"\x7fELF", b"xxxx"))
    (tmp_path / "truncated").write_bytes(open("/usr/bin/curl", "rb").read()[:200])
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    return {
        "nonexistent": (str(tmp_path / "nope"), "no such file"),
        "directory": (str(tmp_path), "is a directory"),
        "empty": (str(tmp_path / "empty"), "empty file"),
        "random": (str(tmp_path / "random"), "not an ELF"),
        "truncated": (str(tmp_path / "truncated"), "truncated"),
        "loop": (str(tmp_path / "loop1"), "symlink loop"),
    }


@pytest.mark.parametrize("case", ["nonexistent", "directory", "empty", "random", "truncated", "loop"])
def test_bad_input_is_one_line_exit_2(bad_inputs, case):
    path, words = bad_inputs[case]
    p = run("analyze", path)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr
    assert p.stdout == ""


def test_strict_fails_on_missing(tmp_path):
    from tests.elf_fixtures import cc, lib
    lib(tmp_path / "libgone.so", "a")
    exe = cc(tmp_path / "prog", "int a(void); int main(void){return a();}\n", f"-L{tmp_path}", "-lgone")
    (tmp_path / "libgone.so").unlink()
    p = run("analyze", str(exe), "--json")
    assert p.returncode == 0
    assert json.loads(p.stdout)["missing"][0]["name"] == "libgone.so"
    assert "libgone.so" in p.stderr
    assert run("analyze", str(exe), "--strict").returncode == 1


def test_usage_error_is_one_line():
    p = run("analyze", "--no-such-flag", "/usr/bin/true")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1


def test_ctrl_c_is_one_line():
    """Ctrl-C while the analysis runs: one line, exit 130, nothing on stdout."""
    code = ("import sys, closure.collect as c; from closure.cli import app\n"
            "def interrupted(*a, **k): raise KeyboardInterrupt\n"
            "c.collect = interrupted\n"
            "sys.argv = ['closure', 'analyze', '/usr/bin/true', '--json']\n"
            "app.main()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 130 and p.stdout == ""
    assert p.stderr.strip().splitlines() == ["closure: interrupted"]


def test_relative_target_is_taken_from_the_working_directory(tmp_path):
    """`closure analyze ./app` means the file the shell would run; inside --root a relative
    path has no meaning and is bad input."""
    (tmp_path / "bin").mkdir()
    os.symlink("/usr/bin/true", tmp_path / "bin" / "app")
    p = run("analyze", "./bin/app", "--json", "--no-recipes", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["targets"] == [str(tmp_path / "bin" / "app")]
    assert any(e["path"] == "/usr/bin/true" for e in doc["entries"])
    p = run("analyze", "./bin/app", "--root", str(tmp_path), cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "closure: error: ./bin/app: give an absolute path (inside the root) or a program name"]


@pytest.mark.parametrize("flag, value, words", [
    ("--tz", "Nowhere/City", "time zone Nowhere/City not found"),
    ("--locale", "xx_YY.UTF-8", "locale xx_YY.UTF-8 not found"),
])
def test_a_zone_or_locale_asked_for_and_absent_is_bad_input(flag, value, words):
    p = run("analyze", "/usr/bin/date", flag, value)
    assert p.returncode == 2 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and words in p.stderr

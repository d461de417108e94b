"""CLI conventions: `python -m closure`, one-line usage errors with one suggestion, a hint
at `--` for commands that run a command line, shell completion, help that keeps examples
as written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, module: str = "closure") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="80")
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env)


def test_python_dash_m_closure_is_the_cli():
    p = run("--version")
    assert p.returncode == 0 and p.stdout.startswith("closure ")


def test_a_mistyped_command_gets_one_suggestion():
    p = run("biuld")
    assert p.returncode == 2
    assert p.stderr.count("Did you mean 'build'?") == 1 and p.stderr.count("\n") == 1, p.stderr


def test_an_option_meant_for_the_command_hints_at_double_dash():
    """`closure verify IMG curl --version` (forgot --). (trace takes the command's options
    without --, so it has no such mistake.)"""
    p = run("verify", "img.tar", "curl", "--version")
    assert p.returncode == 2 and "put -- before it" in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_other_commands_point_at_their_help():
    p = run("build", "--nope")
    assert p.returncode == 2 and "see '" in p.stderr and "--help'" in p.stderr and "--" + " before" not in p.stderr


def test_shell_completion_is_offered():
    p = run("--show-completion", "bash")
    assert p.returncode == 0 and "complete " in p.stdout and "_completion" in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("cmd", ["", "build", "analyze", "slim", "verify", "trace", "diff", "sbom",
                                 "report", "inspect", "explain"])
def test_help_keeps_every_example_line_whole(cmd):
    """Each `closure ...` example of the help text shows on one line, its comment beside it."""
    from closure.cli.app import app
    import typer.main
    group = typer.main.get_command(app)
    command = group if not cmd else group.commands[cmd]
    source = (command.epilog if not cmd else command.help) or ""
    examples = [line.strip() for line in source.splitlines() if line.strip().startswith("closure ")]
    assert examples, "the help has examples"
    shown = run(*([cmd] if cmd else []), "--help").stdout
    lines = {line.strip() for line in shown.splitlines()}
    for ex in examples:
        assert ex in lines, f"{ex!r} was re-wrapped"

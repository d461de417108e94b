"""The Typer app. Each command lives in its own module and registers itself here;
library errors become exit codes in exactly one place (`main`)."""
from __future__ import annotations

import logging
import os
import re
import sys

import typer

from ..errors import ClosureError

EPILOG = """Examples:

  closure build /usr/bin/curl -o curl.tar     # ~10 MB: OCI + docker archive

  closure analyze /usr/bin/curl --tree        # what it needs, and why

  closure slim app.tar -o slim.tar            # slim an image (a CI step)

  closure verify curl.tar -- curl --version   # run it in podman

Exit status: 0 ok, 1 the job failed, 2 bad input or usage."""

app = typer.Typer(
    name="closure",
    help="Build container images holding exactly what one program needs.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,     # click's plain help, which keeps '\b' blocks (examples) unwrapped
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what is being done."),
) -> None:
    if version:
        from .. import __version__
        typer.echo(f"closure {__version__}")
        raise typer.Exit(0)
    if verbose:
        logging.getLogger().setLevel(logging.INFO)


# One module per command; each defines register(app).
from . import analyze, build, check, diff, explain, inspect, push, recipes, report, sbom, slim, trace, verify  # noqa: E402

for _module in (analyze, build, check, diff, explain, inspect, push, recipes, report, sbom, slim, trace, verify):
    _module.register(app)


def _unwrapped_examples(text: str | None) -> str | None:
    """Mark each paragraph of indented lines (an example) with click's '\b', so help keeps
    its lines as written instead of re-wrapping a command mid-comment."""
    if not text:
        return text
    paras = text.split("\n\n")
    return "\n\n".join("\b\n" + p if p.startswith("  ") and not p.startswith("\b") else p for p in paras)


def _keep_examples(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        info.help = _unwrapped_examples(info.help)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _keep_examples(group.typer_instance)


_keep_examples(app)
app.info.epilog = _unwrapped_examples(app.info.epilog)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="closure: %(levelname)s: %(message)s")
    if hasattr(sys.stdout, "reconfigure"):
        # A file name that is not UTF-8 prints as its own bytes (as ls and find print it).
        sys.stdout.reconfigure(errors="surrogateescape")
    try:
        rc = app(standalone_mode=False)
        if rc == 130:  # typer turns Ctrl-C inside a command into a silent 130
            typer.echo("closure: interrupted", err=True)
        sys.exit(rc if isinstance(rc, int) else 0)
    except ClosureError as e:
        typer.echo(f"closure: error: {e}", err=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("closure: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (`closure analyze | head`): no flush error at exit either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as e:
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        typer.echo(f"closure: error: {e.strerror or e}{where}", err=True)
        sys.exit(2)
    except Exception as e:
        if not hasattr(e, "format_message"):  # a click usage error: one line, exit 2
            raise
        if not e.format_message():  # bare `closure`: help was printed
            sys.exit(2)
        typer.echo(f"closure: error: {_usage_message(e)}", err=True)
        sys.exit(getattr(e, "exit_code", 2))


def _usage_message(e) -> str:
    """A click usage error in one line: its suggestion once (typer and click both add
    "Did you mean"), and for a command that runs a command line, where `--` goes."""
    msg = re.sub(r"( Did you mean [^?]*\?)(\1)+", r"\1", e.format_message())
    ctx = getattr(e, "ctx", None)
    if ctx is None:
        return msg
    runs_argv = any(getattr(p, "metavar", None) == "-- CMD..." for p in ctx.command.params)
    if type(e).__name__ == "NoSuchOption" and runs_argv:
        return f"{msg} (to pass options to the command, put -- before it: '{ctx.command_path} ... -- CMD --opt')"
    return f"{msg} (see '{ctx.command_path} --help')"


if __name__ == "__main__":
    main()

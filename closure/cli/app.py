"""The Typer app. Each command lives in its own module and registers itself here;
library errors become exit codes in exactly one place (`main`)."""
from __future__ import annotations

import logging
import os
import sys

import typer

from ..errors import ClosureError

app = typer.Typer(
    name="closure",
    help="Build container images holding exactly what one program needs.",
    no_args_is_help=True,
    add_completion=False,
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
from . import analyze, build, diff, explain, inspect, recipes, report, sbom, slim, trace, verify  # noqa: E402

for _module in (analyze, build, diff, explain, inspect, recipes, report, sbom, slim, trace, verify):
    _module.register(app)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="closure: %(levelname)s: %(message)s")
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
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        typer.echo(f"closure: error: {e.format_message()}{hint}", err=True)
        sys.exit(getattr(e, "exit_code", 2))


if __name__ == "__main__":
    main()

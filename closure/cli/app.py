"""The Typer app. Each command lives in its own module and registers itself here;
library errors become exit codes in exactly one place (`main`)."""
from __future__ import annotations

import logging
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

# One module per command; each defines register(app).
from . import analyze  # noqa: E402

for _module in (analyze,):
    _module.register(app)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line on stderr and return the Exit to raise."""
    typer.echo(f"closure: {message}", err=True)
    return typer.Exit(code)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="closure: %(levelname)s: %(message)s")
    try:
        app(standalone_mode=False)
    except ClosureError as e:
        typer.echo(f"closure: error: {e}", err=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("closure: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("closure: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as e:  # click usage errors and the like
        import click
        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(2)
        if isinstance(e, OSError):
            typer.echo(f"closure: error: {e.strerror or e}: {getattr(e, 'filename', '') or ''}".rstrip(": "), err=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()

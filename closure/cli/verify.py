"""`closure verify`: run a command inside a built image, in a real OCI runtime."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

EXAMPLES = """

Examples:

  closure verify curl.oci -- curl --version

  closure verify curl.tar --network host -- curl -sI https://localhost:8443

  closure verify app.tar                   # the image's Entrypoint + Cmd

  closure verify fs --runtime bwrap -- /bin/ls /    # a rootfs dir

  closure verify curl-arm64.tar -- curl --version    # under qemu on an amd64 host

podman runs the image when installed (the flags that work on this host are found and
cached; CLOSURE_PODMAN_FLAGS fixes them); otherwise bubblewrap runs it unpacked.
An image of another architecture (linux/arm64 here) runs under qemu-user: in podman when
binfmt_misc has a qemu handler for it, else in bubblewrap with qemu-aarch64-static (Debian
package qemu-user-static) bound in; the ok line says which.

Exit status: 0 the command succeeded; 1 it failed (or the image did not load);
2 no usable runtime, or bad input.
"""


def register(app: typer.Typer) -> None:
    @app.command(
        help="Run CMD in IMAGE (OCI layout, OCI/docker archive, or rootfs dir) and report "
             "whether it succeeded." + EXAMPLES,
    )
    def verify(
        image: str = typer.Argument(..., help="An OCI layout dir, an image .tar, or a rootfs dir."),
        cmd: Optional[List[str]] = typer.Argument(None, metavar="-- CMD...", help="Command to run (default: the image's Entrypoint + Cmd)."),
        runtime: str = typer.Option("auto", "--runtime", help="auto | podman | bwrap."),
        network: str = typer.Option("none", "--network", help="none | host (host reaches 127.0.0.1 servers)."),
        podman_flag: Optional[List[str]] = typer.Option(None, "--podman-flag", help="Extra flag for podman run (repeatable)."),
        timeout: Optional[float] = typer.Option(None, "--timeout", min=0.1, help="Fail after S seconds."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document (runtime, argv, exit status, output)."),
    ) -> None:
        from ..errors import JobFailed
        from ..verify import verify as run_verify

        try:
            result = run_verify(image, list(cmd or ()), runtime=runtime, network=network,
                                podman_flags=tuple(podman_flag or ()), timeout=timeout)
        except JobFailed as e:
            _show(getattr(e, "result", None), as_json, ok=False)
            raise
        _show(result, as_json, ok=True)


def _show(result, as_json: bool, ok: bool) -> None:
    if result is None:
        return
    if as_json:
        typer.echo(json.dumps({"ok": ok, "runtime": result.runtime, "emulator": result.emulator,
                               "argv": list(result.argv),
                               "returncode": result.returncode, "stdout": result.stdout,
                               "stderr": result.stderr}, indent=2, sort_keys=True))
        return
    if result.stdout:
        typer.echo(result.stdout, nl=not result.stdout.endswith("\n"))
    if result.stderr:
        typer.echo(result.stderr, nl=not result.stderr.endswith("\n"), err=True)
    if ok:
        typer.echo(f"closure: verify: ok ({result.how})", err=True)

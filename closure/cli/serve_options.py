"""The service-probe options shared by build and slim (`--serve` & co.), and their check."""
from __future__ import annotations

from typing import List, Optional

import typer

ServeOpt = typer.Option(False, "--serve", help="Run the image's Entrypoint+Cmd as a service in the sandbox (its User, Env, WorkingDir; private network) under strace, wait until --ready, run the clients from outside, stop it with SIGTERM; keep what the service touched.")
ServeCmdOpt = typer.Option(None, "--serve-cmd", metavar="CMD", help="The service's command instead of Entrypoint+Cmd (a shell string; implies --serve).")
ReadyOpt = typer.Option(None, "--ready", metavar="HOW", help="When the service is ready: tcp:PORT | http://127.0.0.1:PORT/PATH | log:REGEX (default: the --http port, else the first ExposedPort).")
ReadyTimeoutOpt = typer.Option(None, "--ready-timeout", min=0.1, metavar="S", help="Fail when the service is not ready after S seconds (default 60).")
HttpOpt = typer.Option(None, "--http", metavar="'METHOD PATH [STATUS]'", help="Ask the service over HTTP from outside its traced tree (repeatable); fails unless STATUS (default: below 400).")
HttpCrawlOpt = typer.Option(None, "--http-crawl", min=1, metavar="DEPTH", help="Also GET same-origin links from /, DEPTH levels deep (at most 50 pages).")
ClientOpt = typer.Option(None, "--client", metavar="CMD", help="Run CMD on the host in the service's network namespace, outside the traced tree (repeatable); it must exit 0.")
ServeNetworkOpt = typer.Option(False, "--serve-host-network", help="Let the service share the host's network instead of a private one with loopback.")


def serve_options(v: dict, *, entrypoint=None, cmd=(), user=None, workdir=None, exposed=()):
    """ServeOptions from option values (None when no service probe was asked for); bad
    --ready or --http values are BadInput (exit 2), before anything runs."""
    from ..errors import BadInput
    from ..trace.serve import ServeOptions, parse_http, parse_ready
    serve, command = v.get("serve"), v.get("serve_cmd")
    if isinstance(serve, str):                 # a spec's serve = "CMD"
        serve, command = True, command or serve
    extras = [k for k in ("ready", "ready_timeout", "http", "http_crawl", "client") if v.get(k)]
    if not serve and command is None:
        if extras:
            raise BadInput(f"--{extras[0].replace('_', '-')} needs --serve (or --serve-cmd)")
        return None
    if command is not None and not command.strip():
        raise BadInput("--serve-cmd: empty command")
    ready = parse_ready(v["ready"]) if v.get("ready") else None
    http = tuple(parse_http(h) for h in v.get("http") or ())
    clients = tuple(v.get("client") or ())
    if any(not c.strip() for c in clients):
        raise BadInput("--client: empty command")
    return ServeOptions(
        command=command, ready=ready, http=http, crawl=v.get("http_crawl") or 0, clients=clients,
        ready_timeout=v.get("ready_timeout") or ServeOptions.ready_timeout,
        share_net=bool(v.get("serve_host_network")), exposed=tuple(exposed),
        entrypoint=entrypoint, cmd=tuple(cmd or ()), user=user, workdir=workdir)


def parse_accounts(items) -> tuple[tuple, ...]:
    """--account NAME[:UID[:GID]] -> ("account", NAME, UID|None, GID|None) records."""
    from ..errors import BadInput
    out = []
    for item in items or ():
        parts = item.split(":")
        name = parts[0]
        if not name or len(parts) > 3 or not all(p.isdigit() for p in parts[1:]) \
                or not all(c.isalnum() or c in "._-" for c in name):
            raise BadInput(f"--account {item!r}: give NAME, NAME:UID or NAME:UID:GID")
        uid = int(parts[1]) if len(parts) > 1 else None
        gid = int(parts[2]) if len(parts) > 2 else None
        out.append(("account", name, uid, gid))
    return tuple(out)


AccountOpt = typer.Option(None, "--account", metavar="NAME[:UID[:GID]]", help="Put this account in /etc/passwd and /etc/group (taken from the root when it has it; repeatable).")

__all__ = ["serve_options", "parse_accounts", "List", "Optional"]

"""Options for talking to registries (docker://), shared by every command that reads or
writes images: --creds, --tls-verify, --cert-dir (and --platform where images are read)."""
from __future__ import annotations

from typing import Optional

import typer

from . import options as o

CredsOpt = typer.Option(None, "--creds", metavar="USER:PASSWORD", help="Registry credentials (default: $REGISTRY_AUTH_FILE, podman's auth.json, ~/.docker/config.json).")
TlsVerifyOpt = typer.Option("true", "--tls-verify", metavar="BOOL", help="Verify the registry's TLS certificate; false also allows plain HTTP (as podman).")
CertDirOpt = typer.Option(None, "--cert-dir", metavar="DIR", help="CA certificates (*.crt) and client keys (*.cert, *.key) for the registry.")
PlatformOpt = typer.Option(None, "--platform", metavar="OS/ARCH", help="Which image of a multi-platform index to read (default: this machine's).")

_WRITE = (("creds", Optional[str], CredsOpt), ("tls_verify", str, TlsVerifyOpt),
          ("cert_dir", Optional[str], CertDirOpt))
_READ = _WRITE + (("platform", Optional[str], PlatformOpt),)


def parse_bool(value: str, what: str) -> bool:
    from ..errors import BadInput
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise BadInput(f"{what} {value!r}: give true or false")


def _make(creds=None, tls_verify="true", cert_dir=None, platform=None):
    from ..registry.transport import RegistryOptions
    return RegistryOptions(creds=creds, tls_verify=parse_bool(tls_verify, "--tls-verify"),
                           cert_dir=cert_dir, platform=platform)


# The command receives one RegistryOptions as its parameter `registry`.
registry_options = o.grouped_options(_WRITE, "registry", _make)
source_options = o.grouped_options(_READ, "registry", _make)

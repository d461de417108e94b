"""Build options that recipes read: the user, locales, time zones, extra CAs, gconv modules.

One frozen value per build. `RecipeVars.from_options` is the one place CLI values are
checked, so a bad --tz or an unreadable --ca-cert is a one-line BadInput before any work.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput, read_input

# One PEM certificate block; anything else in a --ca-cert file (a private key pasted into
# the same file, comments) is dropped, so no key can ever reach an image by this route.
_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----")
_ZONE = re.compile(r"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*$")
_LOCALE = re.compile(r"^[A-Za-z0-9_]+(?:\.[A-Za-z0-9_-]+)?(?:@[A-Za-z0-9_]+)?$")
_GCONV = re.compile(r"^[A-Za-z0-9_.:+-]+$")
_NSS = re.compile(r"^[a-z0-9_]+$")
_USER = re.compile(r"^(?:[a-z_][a-z0-9_-]*|[0-9]+)(?::(?:[a-z_][a-z0-9_-]*|[0-9]+))?$")


@dataclass(frozen=True)
class CACert:
    """An extra CA certificate to append to the image's trust stores."""

    name: str        # the file's base name, for reports (host paths stay out of images)
    pem: bytes       # certificate blocks only, each ending in a newline


@dataclass(frozen=True)
class RecipeVars:
    user: str = "root"                    # the image's user (name, uid, or name:group)
    locales: tuple[str, ...] = ()         # --locale: extra locales beside C.UTF-8
    tz: str | None = None                 # --tz Area/City: zone file + /etc/localtime
    tzdata: tuple[str, ...] = ()          # --tzdata: zones or areas to add, or "all"
    ca_certs: tuple[CACert, ...] = ()     # --ca-cert: appended to every CA bundle taken
    gconv: tuple[str, ...] = ()           # --gconv: charsets beside the default set, or "all"
    nss: tuple[str, ...] = ()             # --nss: extra NSS services (e.g. "systemd")
    pycache: bool = False                 # keep Python's __pycache__ dirs

    @classmethod
    def from_options(
        cls,
        *,
        user: str | None = None,
        locales: tuple[str, ...] | list[str] = (),
        tz: str | None = None,
        tzdata: tuple[str, ...] | list[str] = (),
        ca_certs: tuple[str | Path, ...] | list[str | Path] = (),
        gconv: tuple[str, ...] | list[str] = (),
        nss: tuple[str, ...] | list[str] = (),
        pycache: bool = False,
    ) -> "RecipeVars":
        """Check CLI values (BadInput naming the option) and read the --ca-cert files."""
        user = user or "root"
        if not _USER.match(user):
            raise BadInput(f"--user {user!r}: give a name or a uid, optionally :group")
        for loc in locales:
            if not _LOCALE.match(loc):
                raise BadInput(f"--locale {loc!r}: expected a name like fr_FR.UTF-8")
        if tz is not None and not _zone_ok(tz):
            raise BadInput(f"--tz {tz!r}: expected a zone name like Europe/Paris")
        for z in tzdata:
            if z != "all" and not _zone_ok(z):
                raise BadInput(f"--tzdata {z!r}: expected 'all', an area (Europe) or a zone")
        for g in gconv:
            if not _GCONV.match(g):
                raise BadInput(f"--gconv {g!r}: expected a charset name like ISO-8859-15 or 'all'")
        for n in nss:
            if not _NSS.match(n):
                raise BadInput(f"--nss {n!r}: expected an NSS service name like 'systemd'")
        return cls(
            user=user,
            locales=_dedup(locales),
            tz=tz,
            tzdata=_dedup(tzdata),
            ca_certs=tuple(read_ca_cert(p) for p in _dedup(str(p) for p in ca_certs)),
            gconv=_dedup(gconv),
            nss=_dedup(nss),
            pycache=pycache,
        )

    def to_json(self) -> dict:
        """For reports: what the recipes were given (CA names only, never their bytes)."""
        return {
            "user": self.user, "locales": list(self.locales), "tz": self.tz,
            "tzdata": list(self.tzdata), "ca_certs": [c.name for c in self.ca_certs],
            "gconv": list(self.gconv), "nss": list(self.nss), "pycache": self.pycache,
        }


def read_ca_cert(path: str | Path) -> CACert:
    """Read a PEM file given with --ca-cert, keeping only its CERTIFICATE blocks."""
    p = Path(path)
    data = read_input(str(path), f"--ca-cert {path}")
    blocks = [m.group(0).replace(b"\r\n", b"\n") for m in _PEM_CERT.finditer(data)]
    if not blocks:
        raise BadInput(f"--ca-cert {path}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it")
    return CACert(p.name, b"".join(b + b"\n" for b in blocks))


def _zone_ok(name: str) -> bool:
    return bool(_ZONE.match(name)) and ".." not in name.split("/")


def _dedup(values) -> tuple[str, ...]:
    """Keep first occurrences, in the order given (order is meaningful, e.g. LANG)."""
    return tuple(dict.fromkeys(values))

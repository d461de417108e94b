"""The JVM's trust store: a JKS keystore of trusted certificates, read and written here.

JKS is small and fixed: magic FEEDFEED, version 2, a count, entries (tag 2 = trusted cert:
alias, timestamp, "X.509", DER), and a SHA-1 over the password as UTF-16BE, the words
"Mighty Aphrodite" and everything before it. JDK 9+ reads JKS as its cacerts type too
(keystore.type.compat), so --ca-cert's CAs are added as entries to the root's own cacerts,
or to a new one made of the root's PEM bundle when the root's is no JKS. Timestamps are 0:
the same inputs give the same bytes.
"""
from __future__ import annotations

import base64
import hashlib
import re
import struct

MAGIC = 0xFEEDFEED
TRUSTED = 2
PASSWORD = "changeit"      # the JDK's cacerts password; it only keys the integrity digest
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.S)


class KeystoreError(ValueError):
    pass


def pem_certs(data: bytes) -> list[bytes]:
    """The DER of each CERTIFICATE block of a PEM text."""
    out = []
    for m in _PEM.finditer(data):
        try:
            out.append(base64.b64decode(b"".join(m.group(1).split()), validate=True))
        except ValueError:
            continue
    return out


def _utf(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack(">H", len(b)) + b


def _digest(body: bytes, password: str = PASSWORD) -> bytes:
    return hashlib.sha1(password.encode("utf-16-be") + b"Mighty Aphrodite" + body).digest()


def read_jks(data: bytes) -> list[tuple[str, bytes]]:
    """(alias, DER) of the trusted-cert entries of a JKS keystore; KeystoreError when it is
    no JKS, holds private keys, or is cut short."""
    try:
        magic, version, count = struct.unpack_from(">III", data, 0)
        if magic != MAGIC or version != 2:
            raise KeystoreError("not a JKS keystore")
        off, out = 12, []
        for _ in range(count):
            tag, = struct.unpack_from(">I", data, off)
            if tag != TRUSTED:
                raise KeystoreError("holds private keys, not only trusted certificates")
            n, = struct.unpack_from(">H", data, off + 4)
            alias = data[off + 6:off + 6 + n].decode("utf-8", "replace")
            off += 6 + n + 8
            n, = struct.unpack_from(">H", data, off)
            off += 2 + n                                     # the certificate type
            n, = struct.unpack_from(">I", data, off)
            der = data[off + 4:off + 4 + n]
            if len(der) != n:
                raise KeystoreError("cut short")
            out.append((alias, der))
            off += 4 + n
        if len(data) < off + 20:
            raise KeystoreError("cut short")
        return out
    except struct.error:
        raise KeystoreError("cut short") from None


def write_jks(entries: list[tuple[str, bytes]]) -> bytes:
    """A JKS keystore of trusted certificates, in the order given (aliases unique)."""
    body = bytearray(struct.pack(">III", MAGIC, 2, len(entries)))
    for alias, der in entries:
        body += struct.pack(">I", TRUSTED) + _utf(alias) + struct.pack(">Q", 0)
        body += _utf("X.509") + struct.pack(">I", len(der)) + der
    return bytes(body) + _digest(bytes(body))


def with_extra_cas(existing: bytes | None, bundle: bytes | None, extra_pem: bytes) -> bytes:
    """The keystore to ship: the root's JKS (or its PEM bundle's certificates when the root
    has no JKS) plus each --ca-cert certificate not already in it."""
    entries: list[tuple[str, bytes]] = []
    if existing:
        try:
            entries = read_jks(existing)
        except KeystoreError:
            entries = []
    if not entries and bundle:
        entries = [(f"ca-{i:04d}", der) for i, der in enumerate(pem_certs(bundle))]
    have = {der for _, der in entries}
    aliases = {a for a, _ in entries}
    for der in pem_certs(extra_pem):
        if der in have:
            continue
        alias = "closure-" + hashlib.sha256(der).hexdigest()[:16]
        if alias not in aliases:
            entries.append((alias, der))
            have.add(der)
            aliases.add(alias)
    return write_jks(entries)

"""Debian control-file stanzas (deb822): dpkg's `status`, distroless `status.d/<pkg>`
records, DEP-5 copyright files. Parsing is tolerant (a damaged database must not stop an
audit); writing emits exactly what dpkg itself would parse back.
"""
from __future__ import annotations


def parse(text: str) -> list[dict[str, str]]:
    """Stanzas as dicts, field names as written, continuation lines kept with their
    newlines (leading space of each continuation line removed, " ." lines -> "")."""
    stanzas: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    key: str | None = None
    for raw in text.splitlines():
        if not raw.strip():
            if cur:
                stanzas.append(cur)
            cur, key = {}, None
            continue
        if raw.startswith("#"):
            continue   # comments are allowed in DEP-5 (not in dpkg status; harmless there)
        if raw[0] in " \t":
            if key is not None:
                line = raw[1:]
                cur[key] += "\n" + ("" if line.strip() == "." else line)
            continue
        name, colon, value = raw.partition(":")
        if not colon:
            key = None      # a malformed line: skip it, keep the stanza
            continue
        key = name.strip()
        cur[key] = value.strip()
    if cur:
        stanzas.append(cur)
    return stanzas


def field(stanza: dict[str, str], name: str, default: str = "") -> str:
    """A field by case-insensitive name (deb822 field names are case-insensitive)."""
    if name in stanza:
        return stanza[name]
    low = name.lower()
    for k, v in stanza.items():
        if k.lower() == low:
            return v
    return default


def format_stanza(fields: list[tuple[str, str]]) -> str:
    """One stanza; multi-line values get the deb822 continuation form (blank -> ' .')."""
    out = []
    for name, value in fields:
        first, *rest = value.split("\n")
        out.append(f"{name}: {first}".rstrip() if first else f"{name}:")
        for line in rest:
            out.append(" " + line if line.strip() else " .")
    return "\n".join(out) + "\n"

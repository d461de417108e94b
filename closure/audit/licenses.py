"""License names as package databases record them, turned into SPDX terms (best effort).

Debian records licenses in `/usr/share/doc/<pkg>/copyright`: machine-readable (DEP-5)
files carry `License:` fields whose first line is a short name or an expression
("GPL-2+ or Artistic"); older free-form files only point at /usr/share/common-licenses.
Alpine's `L:` field is already close to SPDX. Names we cannot map stay as they are and
become `LicenseRef-` ids (SPDX) or named licenses (CycloneDX), never a guess.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import deb822

# SPDX ids we may emit, matched case-insensitively against the recorded name. Every value
# here is checked against the SPDX license list in the tests.
_SPDX_IDS = (
    "0BSD", "AFL-2.1", "AFL-3.0", "Apache-1.0", "Apache-1.1", "Apache-2.0", "APSL-2.0",
    "Artistic-1.0", "Artistic-1.0-Perl", "Artistic-2.0", "Beerware", "BSD-1-Clause",
    "BSD-2-Clause", "BSD-3-Clause", "BSD-4-Clause", "BSD-4-Clause-UC", "BSL-1.0", "bzip2-1.0.6",
    "CC-BY-3.0", "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC0-1.0", "CDDL-1.0", "CDDL-1.1",
    "CPL-1.0", "curl", "ECL-2.0", "EPL-1.0", "EPL-2.0", "EUPL-1.2", "FSFAP", "FSFUL", "FSFULLR",
    "FTL", "HPND", "ICU", "IJG", "ISC", "Libpng", "libtiff", "LPPL-1.3c", "MIT", "MIT-0",
    "MIT-CMU", "MPL-1.0", "MPL-1.1", "MPL-2.0", "MS-PL", "NCSA", "OFL-1.1", "OLDAP-2.8",
    "OpenSSL", "PHP-3.01", "PostgreSQL", "PSF-2.0", "Python-2.0", "Ruby", "Sleepycat",
    "TCL", "Unicode-DFS-2016", "Unlicense", "UPL-1.0", "Vim", "W3C", "WTFPL", "X11", "Zlib",
    "zlib-acknowledgement", "ZPL-2.1",
)
_BY_LOWER = {i.lower(): i for i in _SPDX_IDS}
# Debian short names (DEP-5 and common practice) that differ from their SPDX id.
_ALIASES = {
    "expat": "MIT", "bsd3": "BSD-3-Clause", "bsd2": "BSD-2-Clause", "apache-2": "Apache-2.0",
    "apache2": "Apache-2.0", "artistic": "Artistic-1.0", "cc0": "CC0-1.0", "psf": "PSF-2.0",
    "openldap-2.8": "OLDAP-2.8", "zope-2.1": "ZPL-2.1", "mpl-2": "MPL-2.0", "lppl-1.3": "LPPL-1.3c",
    "unicode": "Unicode-DFS-2016", "python": "Python-2.0", "zlib/libpng": "Zlib",
}
_GNU = re.compile(r"^(AGPL|LGPL|GPL|GFDL)(?:-?v?(\d+(?:\.\d+)?))?(\+|-or-later|-only)?$", re.I)
_GNU_DEFAULT = {"GPL": "1.0", "LGPL": "2.0", "AGPL": "3.0", "GFDL": "1.1"}   # "any version"
_OPS = {"or": "OR", "and": "AND", "|": "OR", "&": "AND"}


def spdx_id(name: str) -> str | None:
    """The SPDX license id for one license name, or None when there is none we trust."""
    n = name.strip().rstrip(".")
    low = n.lower()
    if low in _ALIASES:
        return _ALIASES[low]
    if low in _BY_LOWER:
        return _BY_LOWER[low]
    m = _GNU.match(n)
    if m:
        family, version, plus = m.group(1).upper(), m.group(2), (m.group(3) or "").lower()
        if version is None:
            return f"{family}-{_GNU_DEFAULT[family]}-or-later"
        if "." not in version:
            version += ".0"
        if (family, version) not in _GNU_VERSIONS:
            return None
        return f"{family}-{version}-" + ("only" if plus in ("", "-only") else "or-later")
    return None


_GNU_VERSIONS = {("GPL", "1.0"), ("GPL", "2.0"), ("GPL", "3.0"), ("LGPL", "2.0"), ("LGPL", "2.1"),
                 ("LGPL", "3.0"), ("AGPL", "1.0"), ("AGPL", "3.0"), ("GFDL", "1.1"), ("GFDL", "1.2"),
                 ("GFDL", "1.3")}


def license_ref(name: str) -> str:
    """An SPDX LicenseRef id for a name with no SPDX id (idstring: letters, digits, . and -)."""
    return "LicenseRef-" + (re.sub(r"[^A-Za-z0-9.]+", "-", name.strip()).strip("-") or "unknown")


@dataclass(frozen=True)
class Term:
    """One license of an expression: the name as recorded and its SPDX id (None if unknown)."""

    name: str
    spdx: str | None

    @property
    def spdx_or_ref(self) -> str:
        return self.spdx or license_ref(self.name)


def _split_top(expr: str) -> list[str]:
    # Words, parentheses and operators; "X with Y exception" stays one term.
    return re.findall(r"\(|\)|,|[^\s(),]+", expr)


def parse_expression(expr: str) -> tuple[str, tuple[Term, ...]]:
    """A recorded license expression -> (SPDX expression, its terms).

    Operators and/or (any case, or & |) and parentheses are kept; a comma (DEP-5's weakest
    separator) becomes AND between parenthesised groups; `with <exception>` makes the term
    one unknown name (exception ids are not guessed)."""
    tokens = _split_top(expr)
    out: list[str] = []
    terms: list[Term] = []
    words: list[str] = []

    def flush() -> None:
        if not words:
            return
        name = " ".join(words)
        words.clear()
        term = Term(name, spdx_id(name))
        terms.append(term)
        out.append(term.spdx_or_ref)

    groups: list[list[str]] = [[]]
    for tok in tokens:
        low = tok.lower()
        if low in _OPS and (words or out or len(groups) > 1):
            flush()
            if out:               # right after a comma it only repeats the comma's AND
                out.append(_OPS[low])
        elif tok in ("(", ")"):
            flush()
            out.append(tok)
        elif tok == ",":
            flush()
            groups[-1].extend(out)
            out.clear()
            groups.append([])
        else:
            words.append(tok)
    flush()
    groups[-1].extend(out)
    parts = []
    for g in groups:
        while g and g[-1] in ("AND", "OR"):
            g.pop()
        while g and g[0] in ("AND", "OR"):
            g.pop(0)
        if g:
            parts.append(" ".join(g))
    if len(parts) > 1:
        text = " AND ".join(f"({p})" if " OR " in p or " AND " in p else p for p in parts)
    else:
        text = parts[0] if parts else ""
    return text.replace("( ", "(").replace(" )", ")"), tuple(terms)


def combine(expressions: list[str]) -> str:
    """Several SPDX expressions that all apply (a package's files) -> one AND expression."""
    uniq = sorted(set(e for e in expressions if e))
    if len(uniq) == 1:
        return uniq[0]
    return " AND ".join(f"({e})" if " OR " in e or " AND " in e else e for e in uniq)


def from_copyright(text: str) -> tuple[str, ...]:
    """License names/expressions a Debian copyright file declares, sorted and distinct."""
    found: set[str] = set()
    if text.lstrip().lower().startswith("format:"):
        for stanza in deb822.parse(text):
            value = deb822.field(stanza, "License")
            first = value.split("\n", 1)[0].strip()
            if first:
                found.add(first)
    else:
        # Free-form: the files under /usr/share/common-licenses it points at.
        for m in re.finditer(r"common-licenses/([A-Za-z0-9][A-Za-z0-9.+-]*)", text):
            found.add(m.group(1).rstrip("."))
    return tuple(sorted(found))

"""The corpus (../shared/corpus.tsv) and its samples (sample_images/<id>/closure.toml): rows,
the smoke check as a podman command line, and the Debian package behind each program."""
from __future__ import annotations

import codecs
import os
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_images"
CORPUS_TSV = Path(os.environ.get("CLOSURE_CORPUS", "/work/shared/corpus.tsv"))
CORPUS_URL = "https://localhost:8443/"     # rewritten to the test server's port


@dataclass(frozen=True)
class Row:
    id: str
    program: str
    argv: str
    stdin: str
    env: str
    net: str
    rc: int
    expect: str

    def argv_list(self, port: int | None = None) -> list[str]:
        text = self.argv if port is None else self.argv.replace(CORPUS_URL, f"https://localhost:{port}/")
        return shlex.split(text)

    def stdin_bytes(self) -> bytes | None:
        """The stdin column with its Python escapes decoded (\\xa4 is one byte)."""
        return codecs.escape_decode(self.stdin.encode("utf-8"))[0] if self.stdin else None

    def env_items(self) -> list[str]:
        return [kv for kv in self.env.split(";") if kv]

    def matches(self, output: str) -> bool:
        return re.search(self.expect, output) is not None


def corpus_rows(path: Path = CORPUS_TSV) -> list[Row]:
    lines = [ln.rstrip("\n") for ln in path.read_text(encoding="utf-8").splitlines()]
    lines = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        d = dict(zip(header, line.split("\t")))
        rows.append(Row(d["id"], d["program"], d["argv"], d["stdin"], d["env"], d["net"],
                        int(d["rc"]), d["expect"]))
    return rows


def sample_rows() -> list[Row]:
    """The same rows, read from the samples' own [smoke] tables (for a checkout without
    ../shared/corpus.tsv: the samples then stand for the corpus)."""
    rows = []
    for spec in sorted(SAMPLES.glob("*/closure.toml")):
        with open(spec, "rb") as f:
            doc = tomllib.load(f)
        smoke = doc.get("smoke")
        if smoke is None:
            continue
        rows.append(Row(spec.parent.name, os.path.basename(doc["targets"][0]), smoke["argv"],
                        smoke.get("stdin", ""), smoke.get("env", ""), smoke["net"], int(smoke["rc"]),
                        smoke["expect"]))
    return rows


def sample_spec(row_id: str) -> Path:
    return SAMPLES / row_id / "closure.toml"


def load_sample(row_id: str) -> dict:
    with open(sample_spec(row_id), "rb") as f:
        return tomllib.load(f)


def package_of(path: str) -> str | None:
    """The Debian package owning path (usrmerge: /usr/bin/x may be recorded as /bin/x)."""
    real = os.path.realpath(path)
    candidates = [real, path]
    for p in (real, path):
        if p.startswith("/usr/"):
            candidates.append(p[4:])
    for cand in dict.fromkeys(candidates):
        r = subprocess.run(["dpkg-query", "-S", cand], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


def installed_kib(package: str) -> int | None:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Installed-Size}", package],
                       capture_output=True, text=True)
    return int(r.stdout) if r.returncode == 0 and r.stdout.strip().isdigit() else None

"""Helper of regen.sh: `record` re-runs the real cases under the project's own tracer
options; `golden` writes NAME.parsed.json for every NAME.log. Not for editing by hand."""
import json
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))

from closure.trace.parse import parse  # noqa: E402
from closure.trace.run import run_probe  # noqa: E402


def cases():
    with open(os.path.join(HERE, "cases.tsv")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, cwd, failed, command = line.rstrip("\n").split("\t")
                yield name, cwd, failed == "1", command


def record():
    for name, cwd, failed, command in cases():
        if command == "-":
            continue
        r = run_probe(shlex.split(command), cwd=cwd, failed=failed,
                      keep_log=os.path.join(HERE, name + ".log"), timeout=60)
        print(f"{name}: {r.describe_status()}, {len(r.accesses)} accesses")


def golden():
    for name, cwd, _failed, _command in cases():
        with open(os.path.join(HERE, name + ".log"), encoding="utf-8", errors="surrogateescape") as f:
            accesses = parse(f, cwd=cwd)
        out = os.path.join(HERE, name + ".parsed.json")
        with open(out + ".tmp", "w", encoding="utf-8", errors="surrogateescape") as f:
            json.dump([a.to_json() for a in accesses], f, indent=1, ensure_ascii=True)
            f.write("\n")
        os.replace(out + ".tmp", out)
        print(f"{name}: {len(accesses)} accesses -> {os.path.basename(out)}")


if __name__ == "__main__":
    {"record": record, "golden": golden}[sys.argv[1]]()

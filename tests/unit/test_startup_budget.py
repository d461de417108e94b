"""Start-up budget of the analysis path: `closure analyze /usr/bin/curl --json` imports at
most BUDGET modules (196 when this was written) and none of the heavy ones that only
building, templating or rich help need. Raise the budget only with a reason."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUDGET = 220
HEAVY = ("jinja2", "zstandard", "isal", "tarfile", "rich", "lief", "elftools", "http", "ssl")

PROBE = r'''
import atexit, sys
sys.argv = ["closure", "analyze", "/usr/bin/curl", "--json"]
atexit.register(lambda: sys.stderr.write("\nMODULES " + " ".join(sorted(sys.modules)) + "\n"))
from closure.cli.app import main
main()
'''


def test_analysis_imports_stay_within_budget():
    p = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=REPO)
    line = p.stderr.rsplit("MODULES ", 1)[-1].split()
    assert p.returncode == 0, p.stderr[-2000:]
    heavy = sorted(m for m in line if m.split(".")[0] in HEAVY)
    assert heavy == [], f"the analysis path imports {heavy}"
    assert len(line) <= BUDGET, f"{len(line)} modules imported (budget {BUDGET})"

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.measured import MEASURED  # noqa: E402

# closure's caches (~/.cache/closure: podman flags, dpkg list indexes of every fake root a
# test builds from) go to a directory of this run, so the suite leaves the user's alone.
_CACHE = os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="closure-test-cache-")


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("measured")
        for line in MEASURED:
            terminalreporter.write_line(line)

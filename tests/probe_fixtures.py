"""Programs whose needs only a run shows, for the probe tests (built with gcc at test time).

They live under /var/tmp, not /tmp: a probe never takes anything under /tmp (scratch
space), so a fixture there could not prove that a probe adds it.

- bin/app PLUGIN: dlopens BASE/plugins/lib<PLUGIN>.so, the name put together at run time
  (it is in none of app's strings, so the static dlopen scan cannot find it), calls its
  greet() and prints it with the first line of BASE/share/greeting.txt. The plugin needs
  libm, which app does not: its own ELF closure must follow it.
- bin/run-app.sh: a #! script that execs app (a script a probe runs, not the target).
- bin/filter.sh: a #! script that pipes through grep and sed.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.elf_fixtures import cc

APP_SOURCE = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : getenv("APP_PLUGIN");
    char path[4096];
    if (name == NULL) {
        fputs("usage: app PLUGIN\n", stderr);
        return 64;
    }
    snprintf(path, sizeof path, "%s/plugins/%s%s%s", BASE, "lib", name, ".so");
    void *h = dlopen(path, RTLD_NOW);
    if (h == NULL) {
        fprintf(stderr, "app: cannot load plugin: %s\n", dlerror());
        return 2;
    }
    const char *(*greet)(void) = (const char *(*)(void))dlsym(h, "greet");
    if (greet == NULL) {
        fprintf(stderr, "app: no greet() in %s\n", path);
        return 3;
    }
    snprintf(path, sizeof path, "%s/share/%s", BASE, "greeting.txt");
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return 4;
    }
    char line[256] = "";
    if (fgets(line, sizeof line, f) == NULL)
        line[0] = 0;
    printf("%s, %s", greet(), line);
    return 0;
}
"""

PLUGIN_SOURCE = r"""
#include <math.h>
#include <stdio.h>
static char buf[64];
const char *greet(void) {
    volatile double x = 2.0;
    snprintf(buf, sizeof buf, "hello from the plugin (%.0f)", sqrt(x * 8.0));
    return buf;
}
"""

GREETING = "the data file says hi\n"
APP_OUTPUT = "hello from the plugin (4), the data file says hi\n"
FILTER_OUTPUT = "bANANa\n"


@dataclass(frozen=True)
class Fixture:
    base: Path

    @property
    def app(self) -> str:
        return str(self.base / "bin" / "app")

    @property
    def plugin(self) -> str:
        return str(self.base / "plugins" / "libhello.so")

    @property
    def data(self) -> str:
        return str(self.base / "share" / "greeting.txt")

    @property
    def run_app(self) -> str:
        return str(self.base / "bin" / "run-app.sh")

    @property
    def filter(self) -> str:
        return str(self.base / "bin" / "filter.sh")


def build(base: Path) -> Fixture:
    cc(base / "bin" / "app", APP_SOURCE, f'-DBASE="{base}"')
    cc(base / "plugins" / "libhello.so", PLUGIN_SOURCE, "-lm", "-Wl,-soname,libhello.so", shared=True)
    for leftover in list((base / "bin").glob("*.c")) + list((base / "plugins").glob("*.c")):
        leftover.unlink()            # the C sources are not part of the fixture
    (base / "share").mkdir()
    (base / "share" / "greeting.txt").write_text(GREETING)
    script(base / "bin" / "run-app.sh", f'#!/bin/sh\nexec "{base}/bin/app" "$@"\n')
    script(base / "bin" / "filter.sh",
           "#!/bin/sh\nprintf 'apple\\nbanana\\ncherry\\n' | grep an | sed 's/an/AN/g'\n")
    return Fixture(base)


def script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@contextlib.contextmanager
def fixture():
    base = Path(tempfile.mkdtemp(prefix="closure-probe-test-", dir="/var/tmp"))
    try:
        yield build(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)

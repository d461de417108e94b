"""`closure explain`: the reason chain from a target to a path, from a real closure and
from hand-made ones (links on the way, roots other than the target, absent paths)."""
from __future__ import annotations

import json
import subprocess
import sys
from functools import lru_cache

import pytest

from closure.collect import Options, collect
from closure.errors import BadInput
from closure.explain import explain, resolve_in
from closure.model import Closure, Entry, Reason

CLI = [sys.executable, "-m", "closure.cli.app"]


@lru_cache(maxsize=None)
def curl():
    return collect(["/usr/bin/curl"], Options())


def test_curl_to_its_openssl_config():
    x = explain(curl(), "curl", "/usr/lib/ssl/openssl.cnf")
    kinds = [s.reason.kind for s in x.chain]
    paths = [s.path for s in x.chain]
    assert x.from_target and paths[0] == "/usr/bin/curl" and kinds[0] == "target"
    assert paths[-1] == "/usr/lib/ssl/openssl.cnf" and x.chain[-1].reason.recipe == "openssl"
    assert x.chain[-1].reason.by.endswith("/libcrypto.so.3")
    assert "needed" in kinds and any(p.endswith("/libcurl.so.4") for p in paths)
    # each step's reason names the previous step (or a link to it)
    for prev, step in zip(x.chain, x.chain[1:]):
        assert step.reason.by == prev.path


def test_paths_through_directory_links_resolve_in_the_closure():
    x = explain(curl(), "/usr/bin/curl", "/lib/x86_64-linux-gnu/libssl.so.3")
    assert x.resolved == "/usr/lib/x86_64-linux-gnu/libssl.so.3" and ("/lib", "usr/lib") in x.links
    assert x.chain[-1].reason.kind == "needed" and x.chain[-1].reason.name == "libssl.so.3"


def test_not_in_closure_and_bad_target():
    assert explain(curl(), "curl", "/etc/shadow") is None
    with pytest.raises(BadInput, match="not one of the closure's targets"):
        explain(curl(), "wget", "/etc/passwd")


def hand_made() -> Closure:
    c = Closure(targets=["/bin/app"])
    c.add(Entry("/bin", "symlink", target="usr/bin"), Reason("symlink", by="/bin/app"))
    c.add(Entry("/usr/bin/app", "file"), Reason("target"))
    c.add(Entry("/usr/lib/liba.so.1", "symlink", target="liba.so.1.2"), Reason("needed", by="/usr/bin/app", name="liba.so.1"))
    c.add(Entry("/usr/lib/liba.so.1.2", "file"), Reason("symlink", by="/usr/lib/liba.so.1"))
    c.add(Entry("/etc/a.conf", "file"), Reason("recipe", by="/usr/lib/liba.so.1.2", recipe="a"))
    c.add(Entry("/etc/extra", "file"), Reason("include"))
    c.targets = ["/usr/bin/app"]
    return c


def test_chain_through_a_soname_link_in_a_hand_made_closure():
    x = explain(hand_made(), "app", "/etc/a.conf")
    assert [(s.path, s.describe()) for s in x.chain] == [
        ("/usr/bin/app", "target"),
        ("/usr/lib/liba.so.1", "needed liba.so.1"),
        ("/usr/lib/liba.so.1.2", "a link's destination"),
        ("/etc/a.conf", "recipe a"),
    ]
    assert x.lines()[0] == "/usr/bin/app  (target)"
    assert x.lines()[-1].endswith("/etc/a.conf  (recipe a)")


def test_path_there_for_another_reason():
    x = explain(hand_made(), "app", "/etc/extra")
    assert not x.from_target and [s.reason.kind for s in x.chain] == ["include"]


def test_resolve_in_follows_only_closure_links():
    assert resolve_in(hand_made(), "/bin/app") == ("/usr/bin/app", (("/bin", "usr/bin"),))
    assert resolve_in(hand_made(), "/usr/lib/liba.so.1") == ("/usr/lib/liba.so.1", ())


def test_cli_explain_text_json_plan_and_exit_codes(tmp_path):
    p = subprocess.run(CLI + ["explain", "/usr/bin/curl", "/etc/ssl/certs/ca-certificates.crt"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "/usr/bin/curl  (target)" and "(recipe " in p.stdout
    p = subprocess.run(CLI + ["explain", "curl", "/etc/passwd", "--json"], capture_output=True, text=True)
    doc = json.loads(p.stdout)
    assert p.returncode == 0 and doc["in_closure"] and doc["chain"][-1]["reason"]["recipe"] == "glibc"
    # from an analysis document
    plan = tmp_path / "plan.json"
    plan.write_text(subprocess.run(CLI + ["analyze", "curl", "--json"], capture_output=True, text=True,
                                   check=True).stdout)
    p = subprocess.run(CLI + ["explain", "curl", "/usr/lib/ssl/openssl.cnf", "--plan", str(plan)],
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.splitlines()[-1].endswith("(recipe openssl)"), p.stderr
    p = subprocess.run(CLI + ["explain", "curl", "/etc/shadow", "--plan", str(plan)], capture_output=True, text=True)
    assert p.returncode == 1 and p.stderr.strip() == "closure: /etc/shadow is not in the closure of curl"
    p = subprocess.run(CLI + ["explain", "curl", "/x", "--plan", str(tmp_path / "nope.json")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no such file" in p.stderr
    p = subprocess.run(CLI + ["explain", "curl", "/x", "--tz", "../etc"], capture_output=True, text=True)
    assert p.returncode == 2 and "--tz" in p.stderr and "Traceback" not in p.stderr


def test_a_soname_or_file_name_stands_for_its_entry():
    """`closure explain curl libssl.so.3`: the entry a reason asked for by that name; a
    plain file name works too; a name several entries have is bad input naming them."""
    x = explain(curl(), "curl", "libssl.so.3")
    assert x.resolved.endswith("/libssl.so.3") and x.from_target
    assert explain(hand_made(), "app", "a.conf").resolved == "/etc/a.conf"
    assert explain(hand_made(), "app", "nothing-such.so") is None
    with pytest.raises(BadInput, match="names .* entries"):
        explain(curl(), "curl", "openssl.cnf")   # /etc/ssl/ and /usr/lib/ssl/ (a link)

"""The persistent dpkg list index (audit/listindex.py): the owners it gives equal a full
scan's, and a stale, corrupt or foreign cache file is never trusted."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from closure.audit.packages import PackageDB
from closure.audit.tree import RootTree
from closure.root import Root
from tests.unit.test_packages import debian_root, write  # noqa: F401  (fixture)

PATHS = ["/usr/lib/x86_64-linux-gnu/libfoo.so.1.2", "/usr/lib/x86_64-linux-gnu/libfoo.so.1",
         "/usr/bin/tool", "/usr/bin/tool.real", "/usr/share/doc/libfoo1/copyright",
         "/usr/share/man/man1/tool.1.gz", "/etc/ssl/certs/ca-certificates.crt", "/usr/bin/none"]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "closure" / "dpkg-index"


def owners(root: Path, indexed: bool = True) -> dict[str, list[tuple[str, str]]]:
    db = PackageDB(RootTree(Root(str(root))))
    if not indexed:
        db._index = None           # what a tree without a cache gets: the full scan
    got = db.owners_of(PATHS)
    return {p: [(o.package.key, o.via) for o in got[p]] for p in PATHS}


def test_index_gives_the_full_scans_owners(debian_root, cache):
    want = owners(debian_root, indexed=False)
    assert want["/usr/bin/tool.real"] == [("tool:amd64", "dpkg-list")], "the fixture means something"
    assert owners(debian_root) == want, "cold: index built"
    assert len(os.listdir(cache)) == 1
    assert owners(debian_root) == want, "warm: index loaded"


def test_common_names_are_answered_from_the_index(debian_root, cache, monkeypatch):
    """A name in many lists (copyright) is kept with its paths: no list is read for it."""
    import closure.audit.listindex as li
    monkeypatch.setattr(li, "COMMON", 0)
    want = owners(debian_root, indexed=False)
    assert owners(debian_root) == want


def test_a_changed_list_is_seen(debian_root, cache):
    owners(debian_root)
    time.sleep(0.01)
    write(debian_root, "/var/lib/dpkg/info/tool.list", "/.\n/bin\n/bin/tool\n/usr/bin/none\n")
    got = owners(debian_root)
    assert got["/usr/bin/none"] == [("tool:amd64", "dpkg-list")], "a stale index is rebuilt"
    assert got == owners(debian_root, indexed=False)


def test_a_corrupt_or_foreign_cache_is_ignored(debian_root, tmp_path, cache):
    want = owners(debian_root)
    (f,) = [cache / n for n in os.listdir(cache)]
    f.write_bytes(b"\xff" * 100)
    assert owners(debian_root) == want, "corrupt: rebuilt"
    other = tmp_path / "other"
    os.rename(debian_root, other)   # the same bytes at another root: another cache file
    assert owners(other) == want
    assert len(os.listdir(cache)) == 2


def test_an_unwritable_cache_only_costs_time(debian_root, tmp_path, monkeypatch):
    (tmp_path / "ro").write_text("a file where the cache directory should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "ro"))
    assert owners(debian_root) == owners(debian_root, indexed=False)

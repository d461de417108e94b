"""The squarified treemap: areas proportional to sizes, inside their box, no overlaps."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings, strategies as st

from closure.audit.treemap import by_directory, by_package, layout, squarify


def test_paper_example():
    # Bruls et al. 2000, figure 4: 6,6,4,3,2,2,1 in a 6x4 box.
    rects = squarify([6, 6, 4, 3, 2, 2, 1], 0, 0, 6, 4)
    assert [tuple(round(v, 3) for v in r) for r in rects[:2]] == [(0, 0, 3, 2), (0, 2, 3, 2)]
    assert sum(w * h for _, _, w, h in rects) == pytest.approx(24)


def _overlap(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return max(0.0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0.0, min(ay + ah, by + bh) - max(ay, by))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=40),
       st.floats(10, 2000), st.floats(10, 2000))
def test_areas_proportional_inside_and_disjoint(sizes, w, h):
    sizes = sorted(sizes, reverse=True)
    rects = squarify([float(s) for s in sizes], 0, 0, w, h)
    total = sum(sizes)
    for s, (x, y, rw, rh) in zip(sizes, rects):
        assert rw * rh == pytest.approx(w * h * s / total, rel=1e-6)
        assert x >= -1e-6 and y >= -1e-6 and x + rw <= w + 1e-6 and y + rh <= h + 1e-6
    for a, b in itertools.combinations(rects, 2):
        assert _overlap(a, b) < 1e-6 * w * h


def test_directory_tree_merges_single_chains_and_lays_out_every_file():
    files = [("/usr/lib/x86_64-linux-gnu/libc.so.6", 2000), ("/usr/lib/x86_64-linux-gnu/libz.so.1", 100),
             ("/usr/bin/curl", 300), ("/etc/passwd", 5)]
    tree = by_directory(files)
    usr = next(c for c in tree.children if c.name == "usr")
    assert sorted(c.name for c in usr.children) == ["bin", "lib/x86_64-linux-gnu"]
    rects = layout(tree, 1200, 560)
    leaves = {r.node.key for r in rects if r.leaf}
    assert leaves == {p for p, _ in files}
    assert tree.size == 2405


def test_package_tree():
    tree = by_package([("libc6", [("/usr/lib/x86_64-linux-gnu/libc.so.6", 2000)]),
                       ("curl", [("/usr/bin/curl", 300)])])
    rects = layout(tree, 100, 100)
    assert {r.node.key for r in rects if r.depth == 1} == {"pkg:libc6", "pkg:curl"}
    assert {r.node.key for r in rects if r.leaf} == {"/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/bin/curl"}

"""Squarified treemaps (Bruls, Huizing, van Wijk 2000), laid out in Python so the HTML
report is plain SVG: no layout code runs in the browser, and the geometry is testable.

`layout(tree, w, h)` takes a Node tree (sizes summed upwards) and returns rectangles for
every node it could fit: groups get a header strip for their label, leaves fill the rest.
"""
from __future__ import annotations

from dataclasses import dataclass, field

HEADER = 14.0        # label strip of a group, in SVG units
PAD = 1.0            # gap between a group's border and its children
MIN_SIDE = 0.5       # rectangles thinner than this are not drawn


@dataclass
class Node:
    name: str
    size: int = 0
    key: str = ""                         # what the rectangle stands for (a path, a package)
    children: list["Node"] = field(default_factory=list)

    def total(self) -> int:
        if self.children:
            self.size = sum(c.total() for c in self.children)
        return self.size


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    node: Node
    depth: int
    leaf: bool


def _worst(row: list[float], side: float) -> float:
    s = sum(row)
    if s <= 0 or side <= 0:
        return float("inf")
    big, small = max(row), min(row)
    return max(side * side * big / (s * s), (s * s) / (side * side * small))


def squarify(sizes: list[float], x: float, y: float, w: float, h: float) -> list[tuple[float, float, float, float]]:
    """Rectangles for sizes (sorted largest first, all > 0) filling the box, in order."""
    total = sum(sizes)
    if total <= 0 or w <= 0 or h <= 0:
        return [(x, y, 0.0, 0.0) for _ in sizes]
    scale = w * h / total
    areas = [s * scale for s in sizes]
    out: list[tuple[float, float, float, float]] = []
    i = 0
    while i < len(areas):
        side = min(w, h)
        row = [areas[i]]
        i += 1
        while i < len(areas) and _worst(row + [areas[i]], side) <= _worst(row, side):
            row.append(areas[i])
            i += 1
        s = sum(row)
        if w >= h:      # a column on the left
            cw = s / h if h else 0.0
            cy = y
            for a in row:
                ch = a / cw if cw else 0.0
                out.append((x, cy, cw, ch))
                cy += ch
            x, w = x + cw, w - cw
        else:           # a row on top
            rh = s / w if w else 0.0
            cx = x
            for a in row:
                rw = a / rh if rh else 0.0
                out.append((cx, y, rw, rh))
                cx += rw
            y, h = y + rh, h - rh
    return out


def layout(root: Node, w: float, h: float, max_depth: int = 12) -> list[Rect]:
    root.total()
    out: list[Rect] = []
    stack = [(root, 0.0, 0.0, w, h, 0)]
    while stack:
        node, x, y, rw, rh, depth = stack.pop()
        if rw < MIN_SIDE or rh < MIN_SIDE:
            continue
        leaf = not node.children or depth >= max_depth
        if depth > 0:
            out.append(Rect(x, y, rw, rh, node, depth, leaf))
        if leaf:
            continue
        if depth > 0:   # room for the group's label and border, when there is room at all
            head = HEADER if rh > 3 * HEADER and rw > 40 else 0.0
            pad = PAD if rw > 8 * PAD and rh > head + 8 * PAD else 0.0
            x, y, rw, rh = x + pad, y + head + pad, rw - 2 * pad, rh - head - 2 * pad
        kids = sorted((c for c in node.children if c.size > 0), key=lambda c: (-c.size, c.name))
        for c, (cx, cy, cw, ch) in zip(kids, squarify([float(c.size) for c in kids], x, y, rw, rh)):
            stack.append((c, cx, cy, cw, ch, depth + 1))
    out.sort(key=lambda r: (r.depth, r.node.key))
    return out


def by_directory(files: list[tuple[str, int]]) -> Node:
    """A tree of directories from (path, size) pairs; chains of single directories are
    merged ("/usr/lib/x86_64-linux-gnu") so the map is not all headers."""
    root = Node("/", key="/")
    dirs = {"/": root}
    for path, size in files:
        parts = [p for p in path.split("/") if p]
        parent = root
        for i in range(len(parts) - 1):
            key = "/" + "/".join(parts[:i + 1])
            d = dirs.get(key)
            if d is None:
                d = dirs[key] = Node(parts[i], 0, key)
                parent.children.append(d)
            parent = d
        parent.children.append(Node(parts[-1] if parts else "/", size, path))
    _merge_chains(root)
    return root


def _merge_chains(node: Node) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        for i, c in enumerate(n.children):
            while len(c.children) == 1 and c.children[0].children:
                only = c.children[0]
                c = Node(c.name + "/" + only.name, 0, only.key, only.children)
            n.children[i] = c
            stack.append(c)


def by_package(groups: list[tuple[str, list[tuple[str, int]]]]) -> Node:
    """Packages (and '(no package)') as groups, their files as leaves."""
    root = Node("", key="")
    for name, files in groups:
        root.children.append(Node(name, 0, "pkg:" + name, [Node(p.rsplit("/", 1)[-1], s, p) for p, s in files]))
    return root

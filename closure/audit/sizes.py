"""Why an image is big, as data for `closure report`: the biggest files with the reason
chain that put each one in, what each layer adds and what of it later layers hide, and
dive's efficiency figure (bytes of the final filesystem over bytes of all layers).

Pure: reads an Inventory only. Chains come from closure.explain over a Closure rebuilt
from the inventory's reasons (an image's reasons label, an analysis, a fresh collect).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..explain import Explanation, explain
from ..model import Closure, Entry
from .inventory import Inventory

TOP_FILES = 20
LAYER_TOP = 3        # biggest files named per layer


@dataclass(frozen=True)
class BigFile:
    rank: int
    path: str
    size: int
    share: float                         # of the image's file bytes
    chain: Explanation | None            # None: no reasons to follow (see `no_chain`)
    no_chain: str = ""                   # why there is no chain, in words


@dataclass(frozen=True)
class LayerView:
    index: int                           # 1-based, as `closure inspect` numbers layers
    created_by: str
    compressed: int | None
    added_files: int
    added_bytes: int                     # every file byte the layer carries
    visible_bytes: int                   # of those, what the final filesystem still shows
    hidden_bytes: int                    # of those, what later layers replaced or removed
    whiteouts: int                       # removal markers this layer applies to earlier ones
    biggest: tuple[tuple[str, int], ...]  # its biggest files still visible


@dataclass(frozen=True)
class Efficiency:
    """As dive gives it: the final filesystem's bytes over the bytes of all layers; the
    rest is wasted (files a later layer replaced or removed)."""
    final_bytes: int
    layer_bytes: int
    wasted_bytes: int
    ratio: float


def closure_of(inv: Inventory) -> Closure | None:
    """The inventory's reasons as a Closure explain() can walk; None when no item has any."""
    if not any(i.reasons for i in inv.items.values()):
        return None
    targets = sorted(p for p, i in inv.items.items() if any(r.kind == "target" for r in i.reasons))
    entries = {p: Entry(p, i.type, i.mode, i.size, i.target, reasons=list(i.reasons))
               for p, i in inv.items.items()}
    return Closure(targets=targets, entries=entries)


def no_reasons_note(inv: Inventory) -> str:
    """Why the inventory's files come without reasons."""
    if inv.reasons_from:
        return f"not in the analysis {inv.reasons_from}"
    if inv.kind == "image":
        return ("the image carries no org.closure.reasons label (it was not made by closure build "
                "or slim): closure report IMAGE --analysis FILE adds reasons")
    if inv.kind == "rootfs":
        return "a directory carries no reasons: closure report DIR --analysis FILE adds them"
    return "no reasons recorded"


def _chain(closure: Closure, path: str) -> Explanation | None:
    """The shortest chain from any target to path; one from a root reason when no target
    leads there."""
    best = None
    for t in closure.targets:
        e = explain(closure, t, path)
        if e is None or not e.chain:
            continue
        key = (not e.from_target, len(e.chain))
        if best is None or key < best[0]:
            best = (key, e)
    return best[1] if best else None


def biggest_files(inv: Inventory, n: int = TOP_FILES) -> list[BigFile]:
    files = sorted((i for i in inv.items.values() if i.type == "file"), key=lambda i: (-i.size, i.path))[:n]
    total = inv.total_bytes or 1
    closure = closure_of(inv)
    out = []
    for rank, i in enumerate(files, 1):
        chain, note = None, ""
        if closure is None:
            note = no_reasons_note(inv)
        elif not i.reasons:
            note = no_reasons_note(inv) if inv.reasons_from else "no reason recorded for this file"
        else:
            chain = _chain(closure, i.path)
            if chain is None:
                note = "its reasons lead to no target"
        out.append(BigFile(rank, i.path, i.size, i.size / total, chain, note))
    return out


def layers(inv: Inventory) -> tuple[list[LayerView], Efficiency | None]:
    """Per layer of an image, from the layer facts `closure inspect` prints and the final
    filesystem's record of which layer each file came from; ([], None) for inventories
    that are not images."""
    from .inspect import facts
    nodes = getattr(inv.tree, "nodes", None)
    if inv.kind != "image" or nodes is None:
        return [], None
    visible: dict[int, list[tuple[str, int]]] = {}
    for p, node in nodes.items():
        if node.type == "file":
            visible.setdefault(node.layer, []).append((p, node.size))
    f = facts(inv)
    out = []
    for layer in f["layers"]:
        mine = sorted(visible.get(layer["index"] - 1, ()), key=lambda x: (-x[1], x[0]))
        out.append(LayerView(
            layer["index"], layer["created_by"] or layer["comment"] or "", layer["size"],
            layer["files"] or 0, layer["bytes"] or 0, sum(s for _, s in mine),
            layer["hidden_bytes"] or 0, layer["whiteouts"] or 0, tuple(mine[:LAYER_TOP])))
    return out, Efficiency(f["bytes"], f["layer_bytes"], f["wasted_bytes"], f["efficiency"])

"""`closure inspect`: an image's config, layers and where its bytes are, in one screen
(what `skopeo inspect` and `dive` show, together)."""
from __future__ import annotations

import posixpath

from ..report import human_size
from .inventory import Inventory

TOP_DEPTH = 3          # directory tree shown this deep
TOP_SHARE = 0.01       # and only directories holding at least this share of the bytes


def directory_sizes(inv: Inventory) -> dict[str, tuple[int, int]]:
    """dir -> (bytes, files) of everything below it."""
    out: dict[str, list[int]] = {}
    for i in inv.items.values():
        if i.type != "file":
            continue
        d = posixpath.dirname(i.path)
        while True:
            acc = out.setdefault(d, [0, 0])
            acc[0] += i.size
            acc[1] += 1
            if d == "/":
                break
            d = posixpath.dirname(d)
    return {d: (v[0], v[1]) for d, v in out.items()}


def top_directories(inv: Inventory) -> list[dict]:
    """The directory tree down to TOP_DEPTH, big directories only, biggest first within
    each parent, in display order."""
    sizes = directory_sizes(inv)
    total = sizes.get("/", (0, 0))[0]
    keep = {d for d, (b, _) in sizes.items()
            if d != "/" and d.count("/") <= TOP_DEPTH and b >= total * TOP_SHARE}
    kids: dict[str, list[str]] = {}
    for d in keep:
        kids.setdefault(posixpath.dirname(d), []).append(d)
    out: list[dict] = []
    stack = [("/", -1)]
    while stack:
        d, depth = stack.pop()
        if d != "/":
            out.append({"path": d, "bytes": sizes[d][0], "files": sizes[d][1], "depth": depth})
        children = sorted(kids.get(d, ()), key=lambda c: (-sizes[c][0], c))
        stack.extend((c, depth + 1) for c in reversed(children))
    return out


def _layer_history(config: dict) -> list[dict]:
    """History entries that made a layer, in layer order."""
    return [h for h in config.get("history") or () if isinstance(h, dict) and not h.get("empty_layer")]


def facts(inv: Inventory) -> dict:
    img = inv.image or {}
    cfg = img.get("config") or {}
    run = cfg.get("config") or {}
    fs = inv.tree
    history = _layer_history(cfg)
    layers = []
    for i, layer in enumerate(img.get("layers") or ()):
        st = fs.layers[i] if fs is not None and i < len(fs.layers) else None
        h = history[i] if i < len(history) else {}
        layers.append({
            "index": i + 1, "digest": layer.get("digest"), "diff_id": layer.get("diff_id"),
            "media_type": layer.get("media_type"), "size": layer.get("size"),
            "entries": st.entries if st else None, "files": st.files if st else None,
            "bytes": st.bytes if st else None, "whiteouts": st.whiteouts if st else None,
            "hidden_bytes": st.hidden_bytes if st else None,
            "created_by": h.get("created_by"), "comment": h.get("comment"), "created": h.get("created"),
        })
    files = [i for i in inv.items.values() if i.type == "file"]
    final = sum(i.size for i in files)
    in_layers = sum(layer["bytes"] or 0 for layer in layers)
    return {
        "path": img.get("path"), "format": img.get("format"), "reference": img.get("reference"),
        "names": img.get("names"), "manifest_digest": img.get("manifest_digest"),
        "config_digest": img.get("config_digest"),
        "platform": {k: cfg[k] for k in ("os", "architecture", "variant") if cfg.get(k)},
        "created": cfg.get("created"), "author": cfg.get("author"),
        "config": {k: run[k] for k in ("Entrypoint", "Cmd", "Env", "User", "WorkingDir", "Labels",
                                        "ExposedPorts", "Volumes", "StopSignal") if run.get(k)},
        "layers": layers,
        "files": len(files),
        "symlinks": sum(1 for i in inv.items.values() if i.type == "symlink"),
        "directories": sum(1 for i in inv.items.values() if i.type == "dir"),
        "bytes": final,
        # dive's figures: what the final filesystem shows over what the layers carry.
        "layer_bytes": in_layers,
        "wasted_bytes": max(in_layers - final, 0),
        "efficiency": final / in_layers if in_layers else 1.0,
        "compressed_bytes": sum(layer.get("size") or 0 for layer in img.get("layers") or ()),
        "hidden_bytes": sum(layer["hidden_bytes"] or 0 for layer in layers),
        "top_directories": top_directories(inv),
    }


def _label_value(key: str, value) -> str:
    """A label as shown on screen; closure's reasons record (KBs of base64) is summarised:
    `--json` keeps it whole."""
    from ..image.reasons import LABEL
    if key == LABEL and isinstance(value, str):
        return (f"<{human_size(len(value))} closure reasons record, read by closure report and "
                f"closure diff; --json shows it>")
    return str(value)


def _short(digest: str | None) -> str:
    return (digest or "-").replace("sha256:", "")[:12]


def text(f: dict) -> str:
    lines = [f"Image       {f['path']} ({f['format']})"]
    if f.get("reference"):
        others = [n for n in f.get("names") or () if n != f["reference"]]
        lines.append(f"Reference   {f['reference']}" + (f" (also {', '.join(others)})" if others else ""))
    if f.get("manifest_digest"):
        lines.append(f"Manifest    {f['manifest_digest']}")
    lines.append(f"Config      {f['config_digest']}")
    plat = f["platform"]
    lines.append(f"Platform    {plat.get('os', '?')}/{plat.get('architecture', '?')}"
                 + (f"/{plat['variant']}" if plat.get("variant") else ""))
    if f.get("created"):
        lines.append(f"Created     {f['created']}")
    c = f["config"]
    for key in ("Entrypoint", "Cmd", "User", "WorkingDir", "StopSignal"):
        if key in c:
            lines.append(f"{key:<12}{c[key]}")
    for key, label in (("ExposedPorts", "Ports"), ("Volumes", "Volumes")):
        if c.get(key):
            lines.append(f"{label:<12}{' '.join(sorted(c[key]))}")
    for e in c.get("Env", ()):
        lines.append(f"Env         {e}")
    for k, v in sorted((c.get("Labels") or {}).items()):
        lines.append(f"Label       {k}={_label_value(k, v)}")
    lines.append("")
    lines.append(f"{'LAYER':<6}{'DIGEST':<14}{'SIZE':>10}{'CONTENT':>11}{'FILES':>7}{'HIDDEN':>10}  CREATED BY")
    for layer in f["layers"]:
        lines.append(
            f"{layer['index']:<6}{_short(layer['digest'] or layer['diff_id']):<14}"
            f"{human_size(layer['size'] or 0):>10}{human_size(layer['bytes'] or 0):>11}"
            f"{layer['files'] or 0:>7}{human_size(layer['hidden_bytes'] or 0):>10}  "
            f"{(layer['created_by'] or '')[:60]}")
    lines.append(f"total: {f['files']} files, {f['symlinks']} symlinks, {f['directories']} dirs; "
                 f"{human_size(f['bytes'])} in files, {human_size(f['compressed_bytes'])} compressed; "
                 f"{human_size(f['hidden_bytes'])} hidden by later layers")
    lines.append(f"efficiency: {f['efficiency']:.1%} ({human_size(f['bytes'])} in the final filesystem "
                 f"of {human_size(f['layer_bytes'])} in all layers; {human_size(f['wasted_bytes'])} wasted)")
    if f["top_directories"]:
        lines.append("")
        lines.append(f"{'SIZE':>10}{'FILES':>7}  DIRECTORY")
        for d in f["top_directories"]:
            lines.append(f"{human_size(d['bytes']):>10}{d['files']:>7}  {'  ' * d['depth']}{d['path']}")
    return "\n".join(lines)

"""`closure report`: one self-contained HTML page (inline CSS, inline SVG, a few lines of
inline JS, nothing fetched): size treemaps by directory and by package, the package
table, and every file with its size, package and the reasons it is in the image."""
from __future__ import annotations

import hashlib
from html import escape

from ..report import describe, human_size
from .bypackage import Grouping
from .inventory import Inventory, Item
from .treemap import Rect, by_directory, by_package, layout

W, H = 1200.0, 560.0
NO_PACKAGE = "(no package)"

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#555}.meta b{color:#1d1d1f}
table{border-collapse:collapse;width:100%}th,td{padding:3px 8px;text-align:left;border-bottom:1px solid #e4e4e7;vertical-align:top}
th{background:#f4f4f5;cursor:pointer;user-select:none;position:sticky;top:0}td.n,th.n{text-align:right;white-space:nowrap}
td.p{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px;word-break:break-all}
td.w{color:#444;font-size:12.5px}tr.hit td{background:#fff3bf}
svg.tm{width:100%;height:auto;border:1px solid #d4d4d8;background:#fafafa}
svg.tm rect.g{fill:none;stroke:#3f3f46;stroke-width:.8}svg.tm rect.l{stroke:#fff;stroke-width:.4;cursor:pointer}
svg.tm rect.l:hover{stroke:#000;stroke-width:1.2}svg.tm text{font-size:10.5px;fill:#18181b;pointer-events:none}
#q{width:340px;padding:4px 8px;margin:0 0 8px;font:inherit}
"""

JS = """
(function(){
  var q=document.getElementById('q'),rows=[].slice.call(document.querySelectorAll('#files tr'));
  q.addEventListener('input',function(){var t=q.value.toLowerCase();
    rows.forEach(function(r){r.style.display=r.textContent.toLowerCase().indexOf(t)<0?'none':'';});});
  document.querySelectorAll('table.sort th').forEach(function(th,i){th.addEventListener('click',function(){
    var tb=th.closest('table').tBodies[0],rs=[].slice.call(tb.rows),num=th.classList.contains('n'),
        dir=th.dataset.dir==='a'?-1:1;th.dataset.dir=dir>0?'a':'d';
    rs.sort(function(a,b){var x=a.cells[i],y=b.cells[i];
      if(num)return dir*((+x.dataset.v)-(+y.dataset.v));return dir*x.textContent.localeCompare(y.textContent);});
    rs.forEach(function(r){tb.appendChild(r);});});});
  document.querySelectorAll('svg.tm rect.l').forEach(function(el){el.addEventListener('click',function(){
    var p=el.getAttribute('data-path');rows.forEach(function(r){r.classList.toggle('hit',r.dataset.path===p);
      if(r.dataset.path===p){r.style.display='';r.scrollIntoView({block:'center'});}});});});
})();
"""


def _colour(name: str, light: int = 62) -> str:
    hue = int(hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:6], 16) % 360
    return f"hsl({hue},58%,{light}%)"


def _svg(rects: list[Rect], colour_of, label: str) -> str:
    out = [f'<svg class="tm" viewBox="0 0 {W:.0f} {H:.0f}" role="img" aria-label="{escape(label)}" '
           f'xmlns="http://www.w3.org/2000/svg">']
    for r in rects:
        x, y, w, h = f"{r.x:.2f}", f"{r.y:.2f}", f"{r.w:.2f}", f"{r.h:.2f}"
        tip = escape(f"{r.node.key or r.node.name}  {human_size(r.node.size)}")
        if r.leaf:
            out.append(f'<rect class="l" x="{x}" y="{y}" width="{w}" height="{h}" fill="{colour_of(r)}" '
                       f'data-path="{escape(r.node.key)}"><title>{tip}</title></rect>')
        else:
            out.append(f'<rect class="g" x="{x}" y="{y}" width="{w}" height="{h}"><title>{tip}</title></rect>')
            if r.h > 42 and r.w > 40:
                chars = max(int(r.w / 6.2) - 1, 0)
                text = f"{r.node.name} ({human_size(r.node.size)})"
                if len(text) > chars:
                    text = text[:max(chars - 1, 0)] + "…"
                if text:
                    out.append(f'<text x="{r.x + 3:.2f}" y="{r.y + 11:.2f}">{escape(text)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def render(inv: Inventory, grouping: Grouping) -> str:
    items = [i for i in inv.sorted_items() if i.type != "dir"]
    files = [(i.path, i.size) for i in items if i.type == "file"]
    owner_of: dict[str, list[str]] = {}
    for g in grouping.groups:
        for i in g.items:
            owner_of.setdefault(i.path, []).append(f"{g.package.name} {g.package.version}")
    unowned = {i.path: why for i, why in grouping.unowned}

    # Leaves take their directory's colour: neighbours in one directory match, and the
    # directories inside a big one (/usr/lib/...) still tell apart.
    dir_map = _svg(layout(by_directory(files), W, H), lambda r: _colour(r.node.key.rsplit("/", 1)[0] or "/"),
                   "treemap of file sizes by directory")
    groups = [(g.package.name, [(i.path, i.size) for i in g.items if i.type == "file"]) for g in grouping.groups]
    nopkg = [(i.path, i.size) for i, _ in grouping.unowned if i.type == "file"]
    if nopkg:
        groups.append((NO_PACKAGE, nopkg))
    pkg_colour = {name: _colour(name, 70 if name == NO_PACKAGE else 60) for name, _ in groups}
    pkg_rects = layout(by_package(groups), W, H)
    parent_of: dict[int, str] = {}
    for r in pkg_rects:
        if r.depth == 1:
            for c in r.node.children:
                parent_of[id(c)] = r.node.name
    pkg_map = _svg(pkg_rects, lambda r: "#c4c4c8" if parent_of.get(id(r.node)) == NO_PACKAGE
                   else pkg_colour.get(parent_of.get(id(r.node), ""), "#999"),
                   "treemap of file sizes by package")

    db = inv.db
    pkg_rows = []
    for g in grouping.groups:
        p = g.package
        lic = db.spdx_license(p)[0] if db is not None else ""
        pkg_rows.append(
            f'<tr><td>{escape(p.name)}</td><td>{escape(p.version)}</td><td>{escape(p.architecture)}</td>'
            f'<td class="w">{escape(lic or "—")}</td><td class="n" data-v="{len(g.items)}">{len(g.items)}</td>'
            f'<td class="n" data-v="{g.bytes}">{human_size(g.bytes)}</td></tr>')

    file_rows = []
    for i in items:
        size = human_size(i.size) if i.type == "file" else ("→ " + (i.target or "") if i.type == "symlink" else i.type)
        pkg = ", ".join(owner_of.get(i.path, ())) or unowned.get(i.path, "")
        file_rows.append(
            f'<tr data-path="{escape(i.path)}"><td class="p">{escape(i.path)}</td>'
            f'<td class="n" data-v="{i.size}">{escape(size)}</td><td>{i.type}</td>'
            f'<td>{escape(pkg)}</td><td class="w">{escape(_why(i, inv))}</td></tr>')

    n_files = sum(1 for i in items if i.type == "file")
    n_links = sum(1 for i in items if i.type == "symlink")
    facts = [f"<b>{n_files}</b> files, <b>{n_links}</b> symlinks, <b>{human_size(inv.total_bytes)}</b> "
             f"({inv.total_bytes} bytes)",
             f"<b>{len(grouping.groups)}</b> packages (database: {escape(', '.join(grouping.databases) or 'none')}"
             + (f", {escape(grouping.distro)}" if grouping.distro else "") + ")"]
    if inv.image:
        facts.append(f"image {escape(inv.image.get('format') or '')} "
                     f"<code>{escape(inv.image.get('manifest_digest') or inv.image.get('config_digest') or '')}</code>")
    title = f"closure report: {inv.name}"
    return "\n".join([
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        '<p class="meta">' + "<br>".join(facts) + "</p>",
        "<h2>Size by directory</h2>", dir_map,
        "<h2>Size by package</h2>", pkg_map,
        f"<h2>Packages ({len(grouping.groups)})</h2>",
        '<table class="sort" id="packages"><thead><tr><th>package</th><th>version</th><th>arch</th>'
        '<th>licenses</th><th class="n">paths</th><th class="n">size</th></tr></thead><tbody>',
        *pkg_rows, "</tbody></table>",
        f"<h2>Files ({len(items)})</h2>",
        '<input id="q" type="search" placeholder="filter: path, package, reason">',
        '<table class="sort"><thead><tr><th>path</th><th class="n">size</th><th>type</th>'
        '<th>package</th><th>why it is in the image</th></tr></thead><tbody id="files">',
        *file_rows, "</tbody></table>",
        f"<script>{JS}</script>", "</body></html>", ""])


def _why(i: Item, inv: Inventory) -> str:
    if i.reasons:
        return "; ".join(describe(r, i.type) for r in i.reasons)
    if inv.kind == "image" and inv.reasons_from:
        return f"in the image; not in the analysis {inv.reasons_from}"
    if inv.kind == "image":
        return "in the image (it carries no reasons label: closure report --analysis FILE adds reasons)"
    return ""

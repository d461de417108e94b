"""`closure report`: one self-contained HTML page (inline CSS, inline SVG, a few lines of
inline JS, nothing fetched) that answers "why is it big": size treemaps by directory and
by package (the biggest boxes labelled, a colour legend each), the 20 biggest files with
the reason chain of each, the layers (what each adds and what later layers hide, dive's
efficiency), the package table and every file with its size, package and reasons. Tables
open sorted by size, largest first."""
from __future__ import annotations

from html import escape

from ..report import describe, human_size
from .bypackage import Grouping
from .inspect import TOP_DEPTH
from .inventory import Inventory, Item
from .sizes import BigFile, Efficiency, LayerView, biggest_files, layers
from .treemap import Rect, by_directory, by_package, layout

W, H = 1200.0, 560.0
NO_PACKAGE = "(no package)"
# Qualitative colours for the legend's top entries, light enough for dark labels; the
# rest share OTHER, files of no package NONE.
PALETTE = ("#7eb0e0", "#f5a65b", "#86cf86", "#ee8a8f", "#b7a3dd", "#6fd0d6", "#f4a3d4",
           "#d2d36e", "#c9a48a", "#ffd866")
OTHER, NONE = "#cfcfd4", "#ececef"
LABEL_CHAR = 6.1     # width of one character of a leaf label (10px monospace), SVG units
LABEL_LINE = 12.0
COLOUR_DEPTH = TOP_DEPTH   # directories coloured as a whole below this depth
SHOW_BY = 3          # a reason given by more objects than this names the first only

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px;overflow-wrap:anywhere}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#555;overflow-wrap:anywhere}.meta b{color:#1d1d1f}.note{color:#555;font-size:13px;margin:4px 0 8px}
table{border-collapse:collapse;width:100%}th,td{padding:3px 8px;text-align:left;border-bottom:1px solid #e4e4e7;vertical-align:top}
th{background:#f4f4f5;cursor:pointer;user-select:none;position:sticky;top:0}td.n,th.n{text-align:right}td.n{white-space:nowrap}
th[data-dir=d]::after{content:" \\25BC";font-size:10px}th[data-dir=a]::after{content:" \\25B2";font-size:10px}
table.fixed{table-layout:fixed}table.fixed td{overflow-wrap:anywhere}td{overflow-wrap:break-word}
td.p,code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
td.w,td.c,span.t{color:#444;font-size:12.5px}tr.hit td{background:#fff3bf}
ol.chain{margin:0;padding-left:18px}ol.chain li{margin:0}ol.chain code{font-size:12px}
.tmw{overflow-x:auto;border:1px solid #d4d4d8}
svg.tm{display:block;width:100%;min-width:900px;height:auto;background:#fafafa}
svg.tm rect.g{fill:none;stroke:#3f3f46;stroke-width:.8}svg.tm rect.l{stroke:#fff;stroke-width:.4;cursor:pointer}
svg.tm rect.l:hover{stroke:#000;stroke-width:1.2}svg.tm text{font-size:10.5px;fill:#18181b;pointer-events:none}
svg.tm text.f{font:10px ui-monospace,SFMono-Regular,Menlo,monospace}svg.tm text.r{font-weight:700}
ul.legend{list-style:none;padding:0;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:2px 16px;font-size:12.5px}
ul.legend i{display:inline-block;width:12px;height:12px;border:1px solid #888;vertical-align:-2px;margin-right:5px}
ul.legend span{color:#666}
.bar{display:inline-block;width:90px;height:9px;background:#eee;vertical-align:middle;margin-left:6px}
.bar i,.bar b,.key i,.key b{display:inline-block;height:9px;vertical-align:top}.bar i,.key i{background:#6aa3d8}
.bar b,.key b{background:#e77c7c}.key{white-space:nowrap}.key i,.key b{width:12px;vertical-align:-1px;margin:0 4px 0 8px}
#q{width:340px;max-width:100%;box-sizing:border-box;padding:4px 8px;margin:0 0 8px;font:inherit}
@media (max-width:760px){
 body{margin:12px}
 table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:auto}
 table.cards colgroup,table.cards:not(.sort) thead{display:none}table.cards thead tr{display:flex;flex-wrap:wrap}
 table.cards th{position:static;border:0}table.cards tr{border-bottom:1px solid #d4d4d8;padding:4px 0}
 table.cards td{border:0;padding:1px 4px;text-align:left}
 table.cards td.n,table.cards td.in{display:inline-block;padding-right:10px}
 table.cards td[data-l]::before{content:attr(data-l) ": ";color:#71717a}
}
"""

JS = """
(function(){
  var q=document.getElementById('q'),rows=[].slice.call(document.querySelectorAll('#files tr'));
  q.addEventListener('input',function(){var t=q.value.toLowerCase();
    rows.forEach(function(r){r.style.display=r.textContent.toLowerCase().indexOf(t)<0?'none':'';});});
  document.querySelectorAll('table.sort th').forEach(function(th){th.addEventListener('click',function(){
    var i=th.cellIndex,tb=th.closest('table').tBodies[0],rs=[].slice.call(tb.rows),num=th.classList.contains('n'),
        dir=th.dataset.dir==='d'?1:th.dataset.dir==='a'?-1:(num?-1:1);
    th.parentNode.querySelectorAll('th').forEach(function(o){delete o.dataset.dir;});
    th.dataset.dir=dir>0?'a':'d';
    rs.sort(function(a,b){var x=a.cells[i],y=b.cells[i];
      if(num)return dir*((+x.dataset.v)-(+y.dataset.v));return dir*x.textContent.localeCompare(y.textContent);});
    rs.forEach(function(r){tb.appendChild(r);});});});
  document.querySelectorAll('svg.tm rect.l').forEach(function(el){el.addEventListener('click',function(){
    var p=el.getAttribute('data-path');q.value='';rows.forEach(function(r){r.classList.toggle('hit',r.dataset.path===p);
      r.style.display='';if(r.dataset.path===p){r.scrollIntoView({block:'center'});}});});});
})();
"""


def _path(p: str) -> str:
    """A path that may break after each '/' (and, failing that, anywhere: CSS)."""
    return escape(p).replace("/", "/<wbr>")


def _share(part: int, total: int) -> str:
    x = part / (total or 1)
    return "<1%" if 0 < x < 0.01 else f"{x:.0%}"


def _fit(text: str, chars: int) -> str:
    if chars <= 0:
        return ""
    return text if len(text) <= chars else (text[:chars - 1] + "…" if chars > 3 else "")


def _leaf_label(r: Rect, rank: int | None) -> list[str]:
    """Up to two lines naming a leaf (its rank among the biggest files first), as much as
    fits its box; the rank alone when nothing else does."""
    chars = int((r.w - 4) / LABEL_CHAR)
    lines = int((r.h - 2) / LABEL_LINE)
    if lines < 1 or chars < 2:
        return []
    mark = f"#{rank} " if rank else ""
    name, size = r.node.name, human_size(r.node.size)
    if lines >= 2 and chars >= 6:
        return [_fit(mark + name, chars), _fit(size, chars)]
    one = f"{mark}{name} {size}"
    if len(one) <= chars:
        return [one]
    if len(mark) + 4 <= chars:
        return [_fit(mark + name, chars)]
    return [mark.strip()] if rank and len(mark.strip()) <= chars else []


def _svg(rects: list[Rect], colour_of, label: str, rank_of: dict[str, int]) -> str:
    out = [f'<div class="tmw"><svg class="tm" viewBox="0 0 {W:.0f} {H:.0f}" role="img" aria-label="{escape(label)}" '
           f'xmlns="http://www.w3.org/2000/svg">']
    for r in rects:
        x, y, w, h = f"{r.x:.2f}", f"{r.y:.2f}", f"{r.w:.2f}", f"{r.h:.2f}"
        tip = escape(f"{r.node.key or r.node.name}  {human_size(r.node.size)}")
        if r.leaf:
            out.append(f'<rect class="l" x="{x}" y="{y}" width="{w}" height="{h}" fill="{colour_of(r)}" '
                       f'data-path="{escape(r.node.key)}"><title>{tip}</title></rect>')
            rank = rank_of.get(r.node.key)
            cls = "f r" if rank else "f"
            lines = _leaf_label(r, rank)
            if lines:
                for n, line in enumerate(lines):
                    out.append(f'<text class="{cls}" x="{r.x + 2.5:.2f}" y="{r.y + 10.5 + n * LABEL_LINE:.2f}">'
                               f'{escape(line)}</text>')
            elif r.h > 2 * r.w:     # a tall thin box: the label runs down it
                # a 9-unit column still holds one line of 10px glyphs
                turned = Rect(r.x, r.y, r.h, max(r.w, LABEL_LINE + 2) if r.w >= 9 else r.w, r.node, r.depth, r.leaf)
                for n, line in enumerate(_leaf_label(turned, rank)):
                    x0, y0 = r.x + 3 + n * LABEL_LINE, r.y + 2.5   # glyphs stand right of x0
                    out.append(f'<text class="{cls}" x="{x0:.2f}" y="{y0:.2f}" transform="rotate(90 {x0:.2f} {y0:.2f})">'
                               f'{escape(line)}</text>')
        else:
            out.append(f'<rect class="g" x="{x}" y="{y}" width="{w}" height="{h}"><title>{tip}</title></rect>')
            if r.h > 42 and r.w > 40:
                chars = max(int(r.w / 6.2) - 1, 0)
                text = _fit(f"{r.node.name} ({human_size(r.node.size)})", chars)
                if text:
                    out.append(f'<text x="{r.x + 3:.2f}" y="{r.y + 11:.2f}">{escape(text)}</text>')
    out.append("</svg></div>")
    return "\n".join(out)


def _palette(sizes: dict[str, int], skip: tuple[str, ...] = ()) -> dict[str, str]:
    """The biggest keys (by bytes, then name) each get a palette colour."""
    top = sorted((k for k in sizes if k not in skip), key=lambda k: (-sizes[k], k))[:len(PALETTE)]
    return dict(zip(top, PALETTE))


def _legend(colours: dict[str, str], sizes: dict[str, int], total: int, what: str,
            extra: tuple[tuple[str, str, int], ...] = ()) -> str:
    def item(colour: str, name: str, n: int) -> str:
        return (f'<li><i style="background:{colour}"></i>{escape(name)} '
                f'<span>{human_size(n)} · {_share(n, total)}</span></li>')
    rest = [k for k in sizes if k not in colours and all(k != e[1] for e in extra)]
    out = [f'<ul class="legend" aria-label="colour legend: {escape(what)}">']
    out += [item(c, k, sizes[k]) for k, c in colours.items()]
    out += [item(c, name, n) for c, name, n in extra if n]
    if rest:
        out.append(item(OTHER, f"{len(rest)} other {what}", sum(sizes[k] for k in rest)))
    out.append("</ul>")
    return "".join(out)


def _chain_cell(b: BigFile, said: str) -> str:
    e = b.chain
    if e is None:
        return f'<td class="c" data-l="why">{"—" if b.no_chain == said else escape(b.no_chain)}</td>'
    steps = []
    for i, s in enumerate(e.chain):
        by = f", by <code>{_path(s.reason.by)}</code>" if s.reason.by and i == 0 else ""
        steps.append(f"<li><code>{_path(s.path)}</code> ({escape(s.describe())}{by})</li>")
    links = "".join(f"<br>reached through the link <code>{_path(a)}</code> → <code>{_path(t)}</code>"
                    for a, t in e.links)
    lead = "" if e.from_target else "not reached from a target; its own reasons: "
    return f'<td class="c" data-l="why">{lead}<ol class="chain">{"".join(steps)}</ol>{links}</td>'


def _biggest(big: list[BigFile], owner_of: dict[str, list[str]], total: int) -> list[str]:
    share = sum(b.size for b in big) / (total or 1)
    notes = {b.no_chain for b in big}
    said = notes.pop() if len(notes) == 1 and all(b.chain is None for b in big) else ""
    out = [f'<h2 id="biggest">The {len(big)} biggest files ({share:.0%} of the bytes), and why each is in</h2>',
           *([f'<p class="note" id="no-chains">No reason chains: {escape(said)}.</p>'] if said else ()),
           '<table class="fixed cards" id="biggest-files"><colgroup><col style="width:3em"><col style="width:6.5em">'
           '<col style="width:4em"><col style="width:34%"><col style="width:14%"><col></colgroup>'
           '<thead><tr><th class="n">#</th><th class="n">size</th><th class="n">share</th><th>path</th>'
           '<th>package</th><th>why: the chain of reasons from a target</th></tr></thead><tbody>']
    for b in big:
        out.append(f'<tr data-rank="{b.rank}"><td class="n">#{b.rank}</td>'
                   f'<td class="n" data-l="size">{human_size(b.size)}</td><td class="n">{b.share:.1%}</td>'
                   f'<td class="p" data-file="{escape(b.path)}">{_path(b.path)}</td>'
                   f'<td data-l="package">{escape(", ".join(owner_of.get(b.path, ())) or "—")}</td>'
                   f'{_chain_cell(b, said)}</tr>')
    out.append("</tbody></table>")
    return out


def _layers(views: list[LayerView], eff: Efficiency) -> list[str]:
    out = [f"<h2 id=\"layers\">Layers ({len(views)}): what each adds, what later layers hide</h2>",
           f'<p class="note">efficiency <b>{eff.ratio:.1%}</b>: {human_size(eff.final_bytes)} in the final '
           f"filesystem of {human_size(eff.layer_bytes)} carried by all layers; <b>{human_size(eff.wasted_bytes)}</b> "
           "wasted (files a later layer replaced or removed: they are still pulled and stored). "
           '<span class="key"><i></i>still visible</span><span class="key"><b></b>hidden later</span></p>',
           '<table class="fixed cards" id="layer-table"><colgroup><col style="width:3.5em"><col style="width:18%">'
           '<col style="width:8em"><col style="width:12.5em"><col style="width:7em"><col style="width:6.5em"><col></colgroup>'
           '<thead><tr><th class="n">layer</th><th>created by</th><th class="n">compressed</th>'
           '<th class="n">adds</th><th class="n">hidden later</th><th class="n">whiteouts</th>'
           "<th>its biggest files still visible</th></tr></thead><tbody>"]
    for v in views:
        n = v.added_bytes or 1
        bar = (f'<span class="bar"><i style="width:{90 * v.visible_bytes / n:.0f}px"></i>'
               f'<b style="width:{90 * min(v.hidden_bytes, n) / n:.0f}px"></b></span>') if v.added_bytes else ""
        files = "<br>".join(f"<code>{_path(p)}</code> {human_size(s)}" for p, s in v.biggest) or "—"
        out.append(f'<tr data-layer="{v.index}"><td class="n" data-l="layer">{v.index}</td>'
                   f'<td data-l="created by">{escape(v.created_by or "—")}</td>'
                   f'<td class="n" data-l="compressed">{human_size(v.compressed or 0)}</td>'
                   f'<td class="n" data-l="adds">{v.added_files} file{"" if v.added_files == 1 else "s"}, {human_size(v.added_bytes)}<br>{bar}</td>'
                   f'<td class="n" data-l="hidden later">{human_size(v.hidden_bytes)}</td>'
                   f'<td class="n" data-l="whiteouts">{v.whiteouts}</td><td class="p">{files}</td></tr>')
    out.append("</tbody></table>")
    return out


def render(inv: Inventory, grouping: Grouping) -> str:
    items = [i for i in inv.sorted_items() if i.type != "dir"]
    files = [(i.path, i.size) for i in items if i.type == "file"]
    total = inv.total_bytes
    owner_of: dict[str, list[str]] = {}
    for g in grouping.groups:
        for i in g.items:
            owner_of.setdefault(i.path, []).append(f"{g.package.name} {g.package.version}")
    unowned = {i.path: why for i, why in grouping.unowned}
    big = biggest_files(inv)
    rank_of = {b.path: b.rank for b in big}

    # Leaves take the colour of their directory, cut at the depth `closure inspect` lists
    # (/usr/share/locale, not its 400 language dirs); the biggest get the legend's colours.
    def folder(path: str) -> str:
        return "/" + "/".join(path.split("/")[1:-1][:COLOUR_DEPTH])
    dir_bytes: dict[str, int] = {}
    for p, size in files:
        dir_bytes[folder(p)] = dir_bytes.get(folder(p), 0) + size
    dir_colour = _palette(dir_bytes)
    dir_map = _svg(layout(by_directory(files), W, H), lambda r: dir_colour.get(folder(r.node.key), OTHER),
                   "treemap of file sizes by directory", rank_of)
    dir_legend = _legend(dir_colour, dir_bytes, total, "directories")

    groups = [(g.package.name, [(i.path, i.size) for i in g.items if i.type == "file"]) for g in grouping.groups]
    nopkg = [(i.path, i.size) for i, _ in grouping.unowned if i.type == "file"]
    if nopkg:
        groups.append((NO_PACKAGE, nopkg))
    pkg_bytes = {name: sum(s for _, s in fs) for name, fs in groups}
    pkg_colour = _palette(pkg_bytes, skip=(NO_PACKAGE,))
    pkg_rects = layout(by_package(groups), W, H)
    parent_of: dict[int, str] = {}
    for r in pkg_rects:
        if r.depth == 1:
            for c in r.node.children:
                parent_of[id(c)] = r.node.name

    def pkg_fill(r: Rect) -> str:
        name = parent_of.get(id(r.node), "")
        return NONE if name == NO_PACKAGE else pkg_colour.get(name, OTHER)
    pkg_map = _svg(pkg_rects, pkg_fill, "treemap of file sizes by package", rank_of)
    pkg_legend = _legend(pkg_colour, pkg_bytes, total, "packages",
                         ((NONE, NO_PACKAGE, pkg_bytes.get(NO_PACKAGE, 0)),))

    db = inv.db
    pkg_rows = []
    for g in sorted(grouping.groups, key=lambda g: (-g.bytes, g.package.name, g.package.architecture)):
        p = g.package
        lic = db.spdx_license(p)[0] if db is not None else ""
        pkg_rows.append(
            f'<tr><td>{escape(p.name)}</td><td class="in" data-l="version">{escape(p.version)}</td>'
            f'<td class="in" data-l="arch">{escape(p.architecture)}</td>'
            f'<td class="w" data-l="licenses">{escape(lic or "—")}</td>'
            f'<td class="n" data-v="{len(g.items)}" data-l="paths">{len(g.items)}</td>'
            f'<td class="n" data-v="{g.bytes}" data-l="size">{human_size(g.bytes)}</td></tr>')

    file_rows = []
    for i in sorted(items, key=lambda i: (-i.size, i.type != "file", i.path)):
        size = human_size(i.size) if i.type == "file" else "—"
        # A link's target goes under its path: long targets wrap there, not over the sizes.
        target = f'<br><span class="t">→ {_path(i.target or "")}</span>' if i.type == "symlink" else ""
        pkg = ", ".join(owner_of.get(i.path, ())) or unowned.get(i.path, "")
        file_rows.append(
            f'<tr data-path="{escape(i.path)}"><td class="p">{_path(i.path)}{target}</td>'
            f'<td class="n" data-v="{i.size}" data-l="size">{escape(size)}</td><td class="in" data-l="type">{i.type}</td>'
            f'<td data-l="package">{escape(pkg)}</td><td class="w">{escape(_why(i, inv))}</td></tr>')

    views, eff = layers(inv)
    n_files = sum(1 for i in items if i.type == "file")
    n_links = sum(1 for i in items if i.type == "symlink")
    facts = [f"<b>{n_files}</b> files, <b>{n_links}</b> symlinks, <b>{human_size(total)}</b> "
             f"({total} bytes)",
             f"<b>{len(grouping.groups)}</b> packages (database: {escape(', '.join(grouping.databases) or 'none')}"
             + (f", {escape(grouping.distro)}" if grouping.distro else "") + ")"]
    if big:
        facts.append(f"biggest file <code>{escape(big[0].path)}</code> {human_size(big[0].size)} "
                     f"({big[0].share:.0%})" + (f"; biggest package {escape(max(pkg_bytes, key=lambda k: (pkg_bytes[k], k)))}"
                                                 f" {human_size(max(pkg_bytes.values()))}" if pkg_bytes else ""))
    if inv.image:
        facts.append(f"image {escape(inv.image.get('format') or '')} "
                     f"<code>{escape(inv.image.get('manifest_digest') or inv.image.get('config_digest') or '')}</code>")
    if eff is not None:
        facts.append(f'<a href="#layers">{len(views)} layer{"s" if len(views) != 1 else ""}</a>, efficiency '
                     f"<b>{eff.ratio:.1%}</b>, <b>{human_size(eff.wasted_bytes)}</b> wasted")
    title = f"closure report: {inv.name}"
    return "\n".join([
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        '<p class="meta">' + "<br>".join(facts) + "</p>",
        "<h2>Size by directory</h2>",
        '<p class="note">Each box is a file, its area its size; #N marks the N-th biggest file '
        '(<a href="#biggest">listed below</a>). Click a box to find it in the file list.</p>',
        dir_map, dir_legend,
        "<h2>Size by package</h2>", pkg_map, pkg_legend,
        *_biggest(big, owner_of, total),
        *(_layers(views, eff) if eff is not None else ()),
        f"<h2>Packages ({len(grouping.groups)})</h2>",
        '<table class="sort cards" id="packages"><thead><tr><th>package</th><th>version</th><th>arch</th>'
        '<th>licenses</th><th class="n">paths</th><th class="n" data-dir="d">size</th></tr></thead><tbody>',
        *pkg_rows, "</tbody></table>",
        f"<h2>Files ({len(items)})</h2>",
        '<input id="q" type="search" placeholder="filter: path, package, reason">',
        '<table class="sort fixed cards" id="file-table"><colgroup><col style="width:36%"><col style="width:6.5em">'
        '<col style="width:4.5em"><col style="width:17%"><col></colgroup>'
        '<thead><tr><th>path</th><th class="n" data-dir="d">size</th><th>type</th>'
        '<th>package</th><th>why it is in the image</th></tr></thead><tbody id="files">',
        *file_rows, "</tbody></table>",
        f"<script>{JS}</script>", "</body></html>", ""])


def _why(i: Item, inv: Inventory) -> str:
    if i.reasons:
        # One reason asked by many (libc.so.6 needed by 50 objects) reads as one phrase.
        same: dict[tuple, list] = {}
        for r in i.reasons:
            same.setdefault((r.kind, r.name, r.recipe, r.probe), []).append(r)
        parts = []
        for rs in same.values():
            if len(rs) <= SHOW_BY:
                parts += [describe(r, i.type) for r in rs]
            else:
                parts.append(f"{describe(rs[0], i.type)} and {len(rs) - 1} more")
        return "; ".join(parts)
    if inv.kind == "image" and inv.reasons_from:
        return f"in the image; not in the analysis {inv.reasons_from}"
    if inv.kind == "image":
        return "in the image (it carries no reasons label: closure report --analysis FILE adds reasons)"
    return ""

"""`closure report` answers "why is it big", read back from the HTML it writes: labelled
treemap boxes, a colour legend per treemap, the biggest files with their reason chains,
the layers with what each adds and what later layers hide, dive's efficiency, tables
opened largest first; and `closure inspect` keeping the reasons label off the screen.

The image is written by hand (tests/slim_images), two layers, a whiteout, and the reasons
label `closure build` writes (closure.image.reasons.encode of a Closure made here)."""
from __future__ import annotations

import html.parser
import json
import subprocess
import sys

import pytest

from closure.image.reasons import LABEL, encode
from closure.model import Closure, Entry, Reason
from tests.slim_images import config_doc, d, f, sha, tar_of, write_oci

CLI = [sys.executable, "-m", "closure.cli.app"]
VOID = {"br", "wbr", "meta", "col", "input", "img", "hr", "link"}

# path -> (bytes, reasons); sizes chosen so the biggest-first order is unambiguous.
FILES = {
    "/app/bin/app": (5000, [Reason("target")]),
    "/app/lib/libbig.so": (9000, [Reason("needed", by="/app/bin/app", name="libbig.so")]),
    "/app/lib/libsmall.so": (300, [Reason("needed", by="/app/lib/libbig.so", name="libsmall.so")]),
    "/etc/app.conf": (120, [Reason("recipe", by="/app/bin/app", recipe="app")]),
    "/app/data.bin": (3000, [Reason("include", name="/app/data.bin")]),
    "/usr/share/locale/de/LC_MESSAGES/app.mo": (400, [Reason("recipe", by="/app/bin/app", recipe="locale")]),
}
JUNK = 2000     # /cache/junk: in layer 1, removed by layer 2's whiteout


class Node:
    def __init__(self, tag: str, attrs: dict, parent: "Node | None"):
        self.tag, self.attrs, self.parent, self.children, self.texts = tag, attrs, parent, [], []

    def text(self) -> str:
        return "".join(t if isinstance(t, str) else t.text() for t in self.texts)

    def find(self, tag: str | None = None, **attrs) -> list["Node"]:
        out, stack = [], list(reversed(self.children))
        while stack:
            n = stack.pop()
            if (tag is None or n.tag == tag) and all(
                    (v in n.attrs.get(k.rstrip("_"), "").split()) if k == "class_" else n.attrs.get(k) == v
                    for k, v in attrs.items()):
                out.append(n)
            stack.extend(reversed(n.children))
        return out


class Tree(html.parser.HTMLParser):
    """Just enough of a DOM: elements in document order, their attributes and text."""

    def __init__(self, page: str):
        super().__init__()
        self.root = self.cur = Node("#root", {}, None)
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        n = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(n)
        self.cur.texts.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.texts.append(data)


def image(tmp_path, *, label: bool = True):
    closure = Closure(targets=["/app/bin/app"])
    for p, (size, reasons) in FILES.items():
        closure.entries[p] = Entry(p, "file", 0o644, size, reasons=list(reasons))
    one = tar_of([d("app"), d("app/bin"), d("app/lib"), d("etc"), d("cache"), f("cache/junk", b"j" * JUNK)]
                 + [d("usr/share/locale/de/LC_MESSAGES"[:i]) for i in (3, 9, 16, 19, 31)]
                 + [f(p[1:], b"x" * size) for p, (size, _) in FILES.items() if p != "/app/data.bin"])
    two = tar_of([f("cache/.wh.junk", b""), f("app/data.bin", b"d" * FILES["/app/data.bin"][0])])
    labels = {LABEL: encode(closure)} if label else {"org.example": "x"}
    config = config_doc([sha(one), sha(two)], entrypoint=["/app/bin/app"], labels=labels)
    return write_oci(tmp_path / ("img.tar" if label else "bare.tar"), [one, two], config)


def report(tmp_path, img) -> Tree:
    out = tmp_path / "r.html"
    p = subprocess.run(CLI + ["report", str(img), "-o", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return Tree(out.read_text())


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    return report(tmp, image(tmp))


def by_size():
    return sorted(FILES, key=lambda p: -FILES[p][0])


def test_biggest_files_with_their_reason_chains(page):
    rows = page.root.find("table", id="biggest-files")[0].find("tr")
    rows = [r for r in rows if "data-rank" in r.attrs]
    assert [r.find("td", class_="p")[0].attrs["data-file"] for r in rows] == by_size()
    chains = {r.find("td", class_="p")[0].attrs["data-file"]: [li.text() for li in r.find("li")] for r in rows}
    assert chains["/app/bin/app"] == ["/app/bin/app (target)"]
    assert chains["/app/lib/libsmall.so"] == ["/app/bin/app (target)", "/app/lib/libbig.so (needed libbig.so)",
                                              "/app/lib/libsmall.so (needed libsmall.so)"]
    assert chains["/etc/app.conf"] == ["/app/bin/app (target)", "/etc/app.conf (recipe app)"]
    # A file put in by --include has no target above it: its own reason is shown, and said so.
    data = next(r for r in rows if r.find("td", class_="p")[0].attrs["data-file"] == "/app/data.bin")
    assert chains["/app/data.bin"] == ["/app/data.bin (include /app/data.bin)"]
    assert "not reached from a target" in data.text()


def test_each_treemap_has_a_legend_matching_its_colours(page):
    legends = page.root.find("ul", class_="legend")
    assert len(legends) == 2 and len(page.root.find("svg")) == 2
    dir_svg, pkg_svg = page.root.find("svg")
    swatch = {li.text().split(" ")[0]: li.find("i")[0].attrs["style"].split(":")[1] for li in legends[0].find("li")}
    # The directory legend names directories by bytes, cut three deep (as inspect lists
    # them); each leaf wears its directory's colour.
    assert list(swatch) == ["/app/lib", "/app/bin", "/app", "/usr/share/locale", "/etc"]
    for rect in dir_svg.find("rect", class_="l"):
        folder = "/" + "/".join(rect.attrs["data-path"].split("/")[1:-1][:3])
        assert rect.attrs["fill"] == swatch[folder], rect.attrs
    assert "(no package)" in legends[1].text()       # no package database in this image
    assert {r.attrs["fill"] for r in pkg_svg.find("rect", class_="l")} <= {
        li.find("i")[0].attrs["style"].split(":")[1] for li in legends[1].find("li")}


def test_the_biggest_boxes_carry_labels_and_ranks(page):
    for svg in page.root.find("svg"):
        texts = [t.text() for t in svg.find("text", class_="f")]
        # libbig.so holds 52% of the bytes: named, with its rank, in both maps.
        assert "#1 libbig.so" in texts and "8.8 KiB" in texts, texts


def test_tables_open_largest_first(page):
    rows = page.root.find("tbody", id="files")[0].find("tr")
    sizes = [int(r.find("td", class_="n")[0].attrs["data-v"]) for r in rows]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == 9000
    heads = page.root.find("table", id="file-table")[0].find("th")
    assert [h.attrs.get("data-dir") for h in heads] == [None, "d", None, None, None]   # shown as sorted
    # The path column has a width of its own (fixed layout), and may break after each '/'.
    table = page.root.find("table", id="file-table")[0]
    assert "fixed" in table.attrs["class"].split() and table.find("col")[0].attrs["style"] == "width:36%"
    assert len(rows[0].find("td", class_="p")[0].find("wbr")) == 3


def test_layers_show_what_each_adds_and_hides_and_the_efficiency(page):
    rows = page.root.find("table", id="layer-table")[0].find("tbody")[0].find("tr")
    assert [r.attrs["data-layer"] for r in rows] == ["1", "2"]
    cells = [{td.attrs.get("data-l"): td.text() for td in r.find("td")} for r in rows]
    one_bytes = sum(s for p, (s, _) in FILES.items() if p != "/app/data.bin") + JUNK
    assert cells[0]["adds"].startswith("6 files, ") and cells[0]["hidden later"] == "2.0 KiB"
    assert cells[1]["whiteouts"] == "1" and cells[1]["hidden later"] == "0 B"
    final = sum(s for s, _ in FILES.values())
    note = page.root.find("h2", id="layers")[0].parent.find("p", class_="note")
    eff = next(p.text() for p in note if p.text().startswith("efficiency"))
    assert f"efficiency {final / (one_bytes + 3000):.1%}" in eff and "2.0 KiB wasted" in eff


def test_an_image_without_reasons_says_why_once(tmp_path):
    page = report(tmp_path, image(tmp_path, label=False))
    note = page.root.find("p", id="no-chains")[0].text()
    assert "carries no org.closure.reasons label" in note and "--analysis" in note
    rows = [r for r in page.root.find("table", id="biggest-files")[0].find("tr") if "data-rank" in r.attrs]
    assert len(rows) == len(FILES) and all(r.find("td", class_="c")[0].text() == "—" for r in rows)


def test_inspect_shows_the_reasons_label_by_its_size_and_json_keeps_it(tmp_path):
    img = image(tmp_path)
    text = subprocess.run(CLI + ["inspect", str(img)], capture_output=True, text=True, check=True).stdout
    value = json.loads(subprocess.run(CLI + ["inspect", str(img), "--json"], capture_output=True, text=True,
                                      check=True).stdout)["config"]["Labels"][LABEL]
    line = next(x for x in text.splitlines() if LABEL in x)
    assert value not in text and "closure reasons record, read by closure report and closure diff" in line
    assert value == encode(Closure(targets=["/app/bin/app"], entries={
        p: Entry(p, "file", 0o644, s, reasons=list(r)) for p, (s, r) in FILES.items()}))
    assert "efficiency: " in text and "wasted" in text


def test_the_page_is_the_same_bytes_run_after_run(tmp_path):
    img = image(tmp_path)
    pages = []
    for name in ("a.html", "b.html"):
        subprocess.run(CLI + ["report", str(img), "-o", str(tmp_path / name)], check=True, capture_output=True)
        pages.append((tmp_path / name).read_bytes())
    assert pages[0] == pages[1]

"""Node's resolution on a synthetic app: node_modules up the tree, package.json main /
exports (conditions, patterns, arrays) / imports, index files, .json, scoped names, a pnpm
store reached through symlinks (kept as links), __dirname data, dynamic requires."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from closure.collect import Options, collect
from closure.errors import BadInput
from closure.imports.node import NodeImports, specifiers
from closure.root import Root


def write(root: Path, rel: str, text: str = "") -> Path:
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def pkg(root: Path, d: str, **doc) -> None:
    write(root, f"{d}/package.json", json.dumps({"name": os.path.basename(d), **doc}))


def make_app(root: Path) -> None:
    pkg(root, "/srv/app", main="server.js", imports={"#conf": "./lib/conf.js"})
    write(root, "/srv/app/server.js", "\n".join([
        "const a = require('plain');", "const b = require(\"@sc/pkg/feature\");",
        "import x from 'exp';", "const fs = require('fs'); const n = require('node:path');",
        "const c = require('#conf');", "const d = require('./data.json');",
        "const e = require('./lib');", "const p = require('viapnpm');",
        "const t = path.join(__dirname, 'templates', 'page.html');",
        "// require('commented-out')", "const dyn = require(name);", "import('lazy').then(f);", ""]))
    write(root, "/srv/app/data.json", "{}")
    write(root, "/srv/app/lib/index.js", "module.exports = require('./helper')")
    write(root, "/srv/app/lib/helper.js")
    write(root, "/srv/app/lib/conf.js")
    write(root, "/srv/app/lib/unused.js")
    write(root, "/srv/app/templates/page.html", "<p>")
    pkg(root, "/srv/app/node_modules/plain", main="./main")
    write(root, "/srv/app/node_modules/plain/main.js", "require('dep')")
    write(root, "/srv/app/node_modules/plain/README.md")
    pkg(root, "/srv/node_modules/dep")                 # found one level up
    write(root, "/srv/node_modules/dep/index.js")
    pkg(root, "/srv/app/node_modules/@sc/pkg", exports={
        ".": "./index.js", "./feature": {"node": {"require": "./f.cjs", "import": "./f.mjs"}, "default": "./f.js"},
        "./sub/*": "./lib/*.js"})
    write(root, "/srv/app/node_modules/@sc/pkg/f.cjs", "require('@sc/pkg/sub/x')")
    write(root, "/srv/app/node_modules/@sc/pkg/f.mjs")
    write(root, "/srv/app/node_modules/@sc/pkg/f.js")
    write(root, "/srv/app/node_modules/@sc/pkg/lib/x.js")
    write(root, "/srv/app/node_modules/@sc/pkg/lib/y.js")
    pkg(root, "/srv/app/node_modules/exp", exports=[{"import": "./esm/i.mjs"}, "./cjs/i.js"])
    write(root, "/srv/app/node_modules/exp/esm/i.mjs", "export { v } from './v.mjs';")
    write(root, "/srv/app/node_modules/exp/esm/v.mjs")
    write(root, "/srv/app/node_modules/exp/cjs/i.js")
    pkg(root, "/srv/app/node_modules/lazy")
    write(root, "/srv/app/node_modules/lazy/index.js")
    pkg(root, "/srv/app/node_modules/.pnpm/viapnpm@1.0.0/node_modules/viapnpm")
    write(root, "/srv/app/node_modules/.pnpm/viapnpm@1.0.0/node_modules/viapnpm/index.js", "require('dep2')")
    pkg(root, "/srv/app/node_modules/.pnpm/viapnpm@1.0.0/node_modules/dep2")
    write(root, "/srv/app/node_modules/.pnpm/viapnpm@1.0.0/node_modules/dep2/index.js")
    os.symlink(".pnpm/viapnpm@1.0.0/node_modules/viapnpm", root / "srv/app/node_modules/viapnpm")


def test_specifiers_of_a_source():
    specs, dynamic, data = specifiers(
        "import a, {b} from 'x';\nexport * from \"y\";\nrequire(`z`)\n/* require('no') */\nrequire(v)\n"
        "fs.readFileSync(path.join(__dirname, 'a', 'b.txt'))\n")
    assert specs == [("z", "require"), ("x", "import"), ("y", "import")]
    assert dynamic == [(5, "v")] and data == ["a/b.txt"]


def test_resolution_follows_node(tmp_path):
    make_app(tmp_path)
    got = NodeImports(Root(str(tmp_path))).analyse(["/srv/app/server.js"])
    files = set(got.files)
    m = "/srv/app/node_modules"
    for p in ("/srv/app/package.json", f"{m}/plain/main.js", f"{m}/plain/package.json",
              "/srv/node_modules/dep/index.js", f"{m}/@sc/pkg/f.cjs", f"{m}/@sc/pkg/f.mjs",
              f"{m}/@sc/pkg/lib/x.js", f"{m}/exp/esm/i.mjs", f"{m}/exp/esm/v.mjs", f"{m}/exp/cjs/i.js",
              "/srv/app/lib/conf.js", "/srv/app/data.json", "/srv/app/lib/index.js",
              "/srv/app/lib/helper.js", f"{m}/lazy/index.js", "/srv/app/templates/page.html",
              f"{m}/.pnpm/viapnpm@1.0.0/node_modules/dep2/index.js"):
        assert p in files, p
    for p in (f"{m}/@sc/pkg/f.js", f"{m}/@sc/pkg/lib/y.js", "/srv/app/lib/unused.js", f"{m}/plain/README.md"):
        assert p not in files, p
    assert any(w.startswith("/srv/app/server.js:11: require(name)") for w in got.warnings), got.warnings


def test_app_dir_target_keeps_pnpm_links_and_sets_the_entrypoint(tmp_path):
    make_app(tmp_path)
    write(tmp_path, "/opt/node/bin/node", "#!/bin/sh\n").chmod(0o755)   # a stand-in runtime
    c = collect(["/srv/app"], Options(root=Root(str(tmp_path)), recipes=False,
                                      runtime="/opt/node/bin/node"))
    assert c.entrypoint == ["/opt/node/bin/node", "/srv/app/server.js"] and c.workdir == "/srv/app"
    link = c.entries["/srv/app/node_modules/viapnpm"]
    assert link.type == "symlink" and link.target == ".pnpm/viapnpm@1.0.0/node_modules/viapnpm"
    assert c.entries["/srv/app/node_modules/.pnpm/viapnpm@1.0.0/node_modules/viapnpm/index.js"].reasons[0].kind == "import"


def test_include_puts_a_tree_at_another_path(tmp_path):
    make_app(tmp_path)
    write(tmp_path, "/opt/node/bin/node", "#!/bin/sh\n").chmod(0o755)
    c = collect(["/opt/node/bin/node"], Options(root=Root(str(tmp_path)), recipes=False,
                                                 includes=(("/srv/app/lib", "/app/lib"),)))
    assert c.entries["/app/lib/unused.js"].source == "/srv/app/lib/unused.js"
    assert c.entries["/app/lib"].type == "dir" and "/srv/app/lib/unused.js" not in c.entries
    c = collect(["/opt/node/bin/node"], Options(root=Root(str(tmp_path)), recipes=False,
                                                 includes=(("/srv/app/node_modules", "/n"),)))
    assert c.entries["/n/viapnpm"].type == "symlink"


@pytest.mark.parametrize("text, words", [("{not json", "not valid JSON"), ("[1]", "not a JSON object"),
                                         ('{"main": "nowhere.js"}', "names no main")])
def test_a_bad_package_json_is_bad_input(tmp_path, text, words):
    write(tmp_path, "/app/package.json", text)
    with pytest.raises(BadInput, match=words):
        collect(["/app"], Options(root=Root(str(tmp_path)), recipes=False))


def test_a_fifo_in_node_modules_is_skipped_not_read(tmp_path):
    make_app(tmp_path)
    os.unlink(tmp_path / "srv/app/node_modules/plain/package.json")
    os.mkfifo(tmp_path / "srv/app/node_modules/plain/package.json")
    got = NodeImports(Root(str(tmp_path))).analyse(["/srv/app/server.js"])   # would block on read
    assert "/srv/app/node_modules/plain/index.js" not in got.files

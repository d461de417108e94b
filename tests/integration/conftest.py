"""Apps shared by the app tests (issue 13), made once per session: a venv under /tmp with
flask, requests and numpy from PyPI (pip's own cache keeps the downloads), an Express app
from the npm registry, a compiled Java class. Each skips with its reason when the tool or
the registry is not there."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FLASK_APP = """\
import json
import sys

import requests
from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/")
def index():
    return jsonify(ok=True, requests=requests.__version__)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]))
"""

NUMPY_APP = "import numpy\nprint(numpy.linalg.inv([[1, 2], [3, 4]]))\n"

EXPRESS_APP = """\
const express = require('express');
const app = express();
app.get('/', (req, res) => res.json({ ok: true, from: 'express' }));
app.listen(Number(process.argv[2] || 3000), '127.0.0.1');
"""

JAVA_FETCH = """\
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class Fetch {
    public static void main(String[] args) throws Exception {
        HttpClient c = HttpClient.newHttpClient();
        HttpResponse<String> r = c.send(HttpRequest.newBuilder(URI.create(args[0])).build(),
                                        HttpResponse.BodyHandlers.ofString());
        System.out.print(r.statusCode() + " " + r.body());
    }
}
"""


def _run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="session")
def py_apps(tmp_path_factory) -> Path:
    """DIR with .venv/ (flask, requests, numpy) and flask_app.py, numpy_app.py beside it."""
    base = sys.executable if not os.path.exists("/usr/bin/python3") else "/usr/bin/python3"
    d = tmp_path_factory.mktemp("pyapps")
    p = _run([base, "-m", "venv", str(d / ".venv")])
    if p.returncode != 0:
        pytest.skip(f"cannot make a venv with {base}: {p.stderr.strip()[-200:]}")
    p = _run([str(d / ".venv/bin/pip"), "install", "-q", "flask", "requests", "numpy"])
    if p.returncode != 0:
        pytest.skip(f"pip install flask requests numpy failed (no PyPI?): {p.stderr.strip()[-300:]}")
    (d / "flask_app.py").write_text(FLASK_APP)
    (d / "numpy_app.py").write_text(NUMPY_APP)
    return d


@pytest.fixture(scope="session")
def express_app(tmp_path_factory) -> Path:
    """An Express app directory (package.json main: server.js) with node_modules."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("needs node and npm")
    d = tmp_path_factory.mktemp("express")
    (d / "package.json").write_text('{"name": "t", "version": "1.0.0", "main": "server.js"}\n')
    (d / "server.js").write_text(EXPRESS_APP)
    p = _run(["npm", "install", "--no-audit", "--no-fund", "--silent", "express"], cwd=d)
    if p.returncode != 0:
        pytest.skip(f"npm install express failed (no registry?): {p.stderr.strip()[-300:]}")
    return d


@pytest.fixture(scope="session")
def java_fetch(tmp_path_factory) -> Path:
    """A directory holding Fetch.class (java.net.http GET of argv[0], prints status + body)."""
    if shutil.which("javac") is None or shutil.which("java") is None:
        pytest.skip("needs a JDK (default-jdk-headless)")
    d = tmp_path_factory.mktemp("java")
    (d / "Fetch.java").write_text(JAVA_FETCH)
    p = _run(["javac", "-d", str(d), str(d / "Fetch.java")])
    if p.returncode != 0:
        pytest.skip(f"javac failed: {p.stderr.strip()[-300:]}")
    return d

"""Loading built-ins and user dirs (override by name), and Jinja2 rendering rules."""
from __future__ import annotations

from pathlib import Path

import pytest

import closure
from closure.recipes import RecipeError, RecipeSet
from closure.recipes.loader import builtin_dir
from closure.recipes.render import Renderer


def test_builtin_dir_is_the_checkout_recipes_dir():
    d = builtin_dir()
    assert d == Path(closure.__file__).resolve().parent.parent / "recipes"
    assert (d / "glibc.toml").is_file() and (d / "templates" / "passwd.j2").is_file()


def test_user_dir_overrides_a_builtin_by_name_and_adds_new_ones(tmp_path):
    (tmp_path / "openssl.toml").write_text(
        'description = "my openssl"\n[trigger]\nsonames = ["libssl.so.3"]\n'
        '[[add]]\npath = "/etc/my-ca.pem"\n')
    (tmp_path / "extra.toml").write_text('description = "extra"\n[trigger]\nalways = true\n')
    builtin = RecipeSet.load()
    rs = RecipeSet.load([tmp_path])
    assert set(rs.recipes) == set(builtin.recipes) | {"extra"}
    mine = rs.get("openssl")
    assert mine.description == "my openssl" and not mine.builtin
    assert mine.source == str(tmp_path / "openssl.toml")
    assert rs.get("glibc").builtin


def test_later_user_dir_wins(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d, desc in ((a, "from a"), (b, "from b")):
        d.mkdir()
        (d / "x.toml").write_text(f'description = "{desc}"\n')
    assert RecipeSet.load([a, b]).get("x").description == "from b"
    assert RecipeSet.load([b, a]).get("x").description == "from a"


def test_user_templates_override_builtin_templates_by_name(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "hosts.j2").write_text("10.0.0.1 mine\n")
    rs = RecipeSet.load([tmp_path])
    assert rs.renderer.template("hosts.j2", {}, "t") == "10.0.0.1 mine\n"
    assert "localhost" in RecipeSet.load().renderer.template("hosts.j2", {}, "t")


def test_recipe_file_that_is_not_utf8_is_bad_input(tmp_path):
    (tmp_path / "x.toml").write_bytes(b'description = "\xff\xfe"\n')
    with pytest.raises(RecipeError, match=r"x.toml: invalid TOML: not UTF-8"):
        RecipeSet.load([tmp_path])


def test_missing_user_dir_and_unknown_name_are_bad_input(tmp_path):
    with pytest.raises(RecipeError, match="not a directory"):
        RecipeSet.load([tmp_path / "nope"])
    with pytest.raises(RecipeError, match="no recipe named 'nope'"):
        RecipeSet.load().get("nope")


def test_builtin_recipes_compile():
    RecipeSet.load().check()   # every string and template of every built-in recipe


def test_check_reports_template_syntax_and_missing_template(tmp_path):
    (tmp_path / "bad.toml").write_text('description = "x"\n[[add]]\npath = "{{ x "\n')
    with pytest.raises(RecipeError, match=r"bad.toml: add\[1\].path: template syntax error"):
        RecipeSet.load([tmp_path]).check()
    (tmp_path / "bad.toml").write_text('description = "x"\n[[add]]\ntemplate = "nope.j2"\nto = "/x"\n')
    with pytest.raises(RecipeError, match="template not found: nope.j2"):
        RecipeSet.load([tmp_path]).check()


def test_strict_undefined_names_the_place():
    r = Renderer(())
    assert r.string("{{ a.b }}/x", {"a": {"b": "/etc"}}, "w") == "/etc/x"
    with pytest.raises(RecipeError, match=r"^here: 'nope' is undefined"):
        r.string("{{ nope }}", {}, "here")
    with pytest.raises(RecipeError, match="has no attribute 'missing'"):
        r.string("{{ a.missing }}", {"a": {"b": 1}}, "here")
    with pytest.raises(RecipeError, match="'nope' is undefined"):
        r.expr("nope", {}, "here")
    with pytest.raises(RecipeError, match="'nope' is undefined"):
        r.expr("nope and true", {}, "here")


def test_expressions_and_plain_strings():
    r = Renderer(())
    assert r.expr("a and a.x", {"a": None}, "w") is None
    assert r.expr("a.x + ['z']", {"a": {"x": ["y"]}}, "w") == ["y", "z"]
    assert r.string("/no/template/here", {}, "w") == "/no/template/here"


@pytest.mark.parametrize("text", [
    "{{ a.b }}/x", "/p/{{ a.l[1] }}-{{ n }}", "{{ a.none }}", "{{ t }}", "{{a.b}}{{ a.b }}",
    "{{ a.none or a.b }}", "{{ a.b and a.l }}", "{{ n == 0 }}-{{ 'q' }}", '{{ "d" != a.b }}',
    "{{ not a.none }}", "{{ (a.none or n) or a.l[0] }}",
    # not the plain evaluator's: Jinja renders these
    "{{ a.l | join(',') }}", "{{ a.b ~ '/x' }}", "{{ n + 1 }}", "{# c #}{{ a.b }}", "{{- a.b -}}",
    "{{ a.b if t else n }}", "{{ 'x' in a.l }}", "{}", "{{ '}}' }}",
])
def test_fast_placeholders_render_like_jinja(text):
    ctx = {"a": {"b": "/etc", "l": ["x", "y"], "none": None}, "n": 3, "t": True}
    r = Renderer(())
    assert r.string(text, ctx, "w") == r.env.from_string(text).render(ctx)


@pytest.mark.parametrize("text", [
    "a.b", "not a.b", "a.none", "not a.none", "a.l", "a.l[0]", "true", "n",
    "a.b and a.l", "a.none and a.b", "n or a.b", "n or a.none", "a.none or n",
    "a.b and not a.none", "n or a.b and a.l", "not n and not a.none or a.b", "a.l and a.none or n",
    "a.none and (a.b or n)", "(a.none or n) and a.b", "not (n or a.none)", "((a.b))",
    "a.b == '/etc'", "a.b != '/etc'", "not a.b == 'x'", 'n == 0 or a.none', "'s'", "a.l[1] == \"y\"",
    "true and false", "none or n",
    # not the plain evaluator's: Jinja evaluates these
    "a.l + ['z']", "a.b in a.l", "n is none", "a.b if n else a.l", "a.l | length", "n < 1",
])
def test_fast_expressions_evaluate_like_jinja(text):
    ctx = {"a": {"b": "/etc", "l": ["x", "y"], "none": None}, "n": 0}
    r = Renderer(())
    assert r.expr(text, ctx, "w") == r.env.compile_expression(text)(**ctx)


@pytest.mark.parametrize("text, expr", [("{{ nope }}", False), ("{{ a.zz }}", False), ("{{ a.l[5] }}", False),
                                        ("nope", True), ("not a.zz", True), ("a.l or nope", True),
                                        ("a.l or (nope and a)", True), ("a.zz == 'x'", True)])
def test_fast_path_is_as_strict_as_jinja(text, expr):
    import jinja2
    ctx = {"a": {"l": []}}
    r = Renderer(())
    with pytest.raises(RecipeError, match="^w: "):
        r.expr(text, ctx, "w") if expr else r.string(text, ctx, "w")
    with pytest.raises(jinja2.UndefinedError):
        if expr:
            str(r.env.compile_expression(text, undefined_to_none=False)(**ctx))
        else:
            r.env.from_string(text).render(ctx)


TEMPLATE_CONTEXT = {
    "accounts": {"users": [{"name": "root", "uid": 0, "gid": 0, "gecos": "root", "home": "/root",
                            "shell": "/sbin/nologin"}],
                 "groups": [{"name": "root", "gid": 0, "members": ""}, {"name": "adm", "gid": 4, "members": "syslog,www-data"}]},
    "nss_conf": {"lines": [["passwd", "files"], ["hosts", "files dns"]],
                 "formatted": ["passwd:         files", "hosts:          files dns"]},
    "pairs": [["a", 1], ["b", None]], "outer": [["x", "y"], []], "n": 0,
}


@pytest.mark.parametrize("source", [
    "line\n{% for a, b in pairs %}\n{{ a }}={{ b }}\n{% endfor %}\nend",
    "  {% for l in outer %}\n[\n    {%for x in l%}\n  - {{ x }}\n    {% endfor %}\n]\n{% endfor %}\n",
    "{% for a, b in pairs %}\n{% if b %}{{ a }}{% endif %}\n{% endfor %}\n",    # Jinja's
    "{% for a, b in pairs %}\n{{ loop.index }} {{ a }}\n{% endfor %}\n",         # Jinja's
    "{% for a, b in pairs %} {{ a }}\n{% endfor %}\n",                          # Jinja's
    "{% for a in pairs %}\n{{ a }}\n{% endfor %}",
    "no tags at all {{ n }}",
])
def test_fast_templates_render_like_jinja(tmp_path, source):
    (tmp_path / "t.j2").write_text(source)
    r = Renderer((tmp_path,))
    assert r.template("t.j2", TEMPLATE_CONTEXT, "w") == r.env.get_template("t.j2").render(TEMPLATE_CONTEXT)


def test_builtin_templates_render_like_jinja():
    r = RecipeSet.load().renderer
    for name in ("group.j2", "hosts.j2", "nsswitch.conf.j2", "passwd.j2"):
        fast = r.template(name, TEMPLATE_CONTEXT, "w")
        assert r._parsed[("template", name)] is not None, f"{name} renders without Jinja"
        assert fast == r.env.get_template(name).render(TEMPLATE_CONTEXT), name


def test_template_errors_are_one_line_recipe_errors(tmp_path):
    (tmp_path / "t.j2").write_text("{% for a, b in pairs %}\n{{ a }}\n{% endfor %}\n")
    r = Renderer((tmp_path,))
    with pytest.raises(RecipeError, match=r"^w: 'pairs' is undefined"):
        r.template("t.j2", {}, "w")
    with pytest.raises(RecipeError, match=r"^w: TypeError: 'NoneType' object is not iterable"):
        r.template("t.j2", {"pairs": None}, "w")
    with pytest.raises(RecipeError, match=r"^w: ValueError: "):
        r.template("t.j2", {"pairs": [[1, 2, 3]]}, "w")
    for name in ("../t.j2", "/etc/passwd", "nope.j2"):
        with pytest.raises(RecipeError, match=f"^w: template not found: {name}"):
            r.template(name, {}, "w")
    (tmp_path / "latin1.j2").write_bytes(b"caf\xe9\n")
    with pytest.raises(RecipeError, match="^w: cannot read template"):
        r.template("latin1.j2", {}, "w")


def test_analysis_with_the_builtin_recipes_never_imports_jinja():
    import subprocess
    import sys
    code = ("import sys; from closure.collect import Options, collect; "
            "collect(['/usr/bin/curl'], Options()); print('jinja2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

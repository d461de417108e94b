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
])
def test_fast_placeholders_render_like_jinja(text):
    ctx = {"a": {"b": "/etc", "l": ["x", "y"], "none": None}, "n": 3, "t": True}
    r = Renderer(())
    assert r.string(text, ctx, "w") == r.env.from_string(text).render(ctx)


@pytest.mark.parametrize("text", [
    "a.b", "not a.b", "a.none", "not a.none", "a.l", "a.l[0]", "true", "n",
    "a.b and a.l", "a.none and a.b", "n or a.b", "n or a.none", "a.none or n",
    "a.b and not a.none", "n or a.b and a.l", "not n and not a.none or a.b", "a.l and a.none or n",
])
def test_fast_expressions_evaluate_like_jinja(text):
    ctx = {"a": {"b": "/etc", "l": ["x", "y"], "none": None}, "n": 0}
    r = Renderer(())
    assert r.expr(text, ctx, "w") == r.env.compile_expression(text)(**ctx)


@pytest.mark.parametrize("text, expr", [("{{ nope }}", False), ("{{ a.zz }}", False), ("{{ a.l[5] }}", False),
                                        ("nope", True), ("not a.zz", True), ("a.l or nope", True)])
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

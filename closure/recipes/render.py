"""Jinja2 for recipes: one environment per RecipeSet, StrictUndefined, compiled once.

Every string a recipe holds (paths, `when`, `each`, env values) and every template file is
evaluated here against the fixed context the engine builds. A name the context lacks is an
error naming the recipe and the key, never an empty string in a path. jinja2 is imported
only for what the plain evaluator below cannot read: the built-in recipes never need it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .schema import RecipeError

_NAME = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[\d+\])*"
_WORDS = frozenset({"not", "and", "or", "in", "is", "if", "else"})
_LITERALS = {"true": True, "True": True, "false": False, "False": False, "none": None, "None": None}

# -- without Jinja ---------------------------------------------------------------------------
# Importing Jinja and compiling costs ~40 ms a run, more than all the recipes' own work, and
# the shipped recipes use only names (`a.b[0]`), quoted strings, `not`/`and`/`or`,
# parentheses and `==`/`!=`, in `{{ }}` placeholders and in templates whose `for` and
# `endfor` tags stand alone on their lines. Those are evaluated here with Jinja's
# semantics (tests/unit/test_recipes_loader.py compares both); anything else goes to Jinja.

_TOKEN = re.compile(r"""\s*(?:(==|!=|\(|\))|'([^'\\]*)'|"([^"\\]*)"|(""" + _NAME + r"))")
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
_FOR = re.compile(r"[ \t]*\{%\s*for\s+(\w+(?:\s*,\s*\w+)*)\s+in\s+(.+?)\s*%\}\n?")
_ENDFOR = re.compile(r"[ \t]*\{%\s*endfor\s*%\}\n?")


class _NeedsJinja(Exception):
    pass


def _parse_expr(text: str):
    """An expression as a tree of tuples, or None when it needs Jinja."""
    tokens, pos, text = [], 0, text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            return None
        op, sq, dq, name = m.groups()
        pos = m.end()
        if op or name in ("not", "and", "or"):
            tokens.append(("op", op or name))
        elif name is None:
            tokens.append(("str", sq if sq is not None else dq))
        elif re.match(r"\w+", name).group() in _WORDS:
            return None     # `in`, `is`, `if`, `and.x`...: Jinja's to read
        else:
            tokens.append(("name", name))
    p = _Parser(tokens)
    try:
        tree = p.or_()
    except _NeedsJinja:
        return None
    return tree if p.i == len(tokens) else None


class _Parser:
    """or_ := and_ ('or' and_)*; and_ := not_ ('and' not_)*; not_ := 'not' not_ | cmp;
    cmp := atom [('==' | '!=') atom]; atom := name | string | '(' or_ ')'."""

    def __init__(self, tokens: list):
        self.t, self.i = tokens, 0

    def _take(self, op: str) -> bool:
        if self.i < len(self.t) and self.t[self.i] == ("op", op):
            self.i += 1
            return True
        return False

    def or_(self):
        node = self.and_()
        while self._take("or"):
            node = ("or", node, self.and_())
        return node

    def and_(self):
        node = self.not_()
        while self._take("and"):
            node = ("and", node, self.not_())
        return node

    def not_(self):
        if self._take("not"):
            return ("not", self.not_())
        node = self._atom()
        for op in ("==", "!="):
            if self._take(op):
                return (op, node, self._atom())
        return node

    def _atom(self):
        if self._take("("):
            node = self.or_()
            if self._take(")"):
                return node
            raise _NeedsJinja
        if self.i < len(self.t) and self.t[self.i][0] in ("name", "str"):
            self.i += 1
            return self.t[self.i - 1]
        raise _NeedsJinja


def _eval(node, context: dict, where: str):
    kind = node[0]
    if kind == "name":
        return _lookup(node[1], context, where)
    if kind == "str":
        return node[1]
    if kind == "not":
        return not _eval(node[1], context, where)
    left = _eval(node[1], context, where)
    if kind == "and":
        return _eval(node[2], context, where) if left else left
    if kind == "or":
        return left if left else _eval(node[2], context, where)
    right = _eval(node[2], context, where)
    return left == right if kind == "==" else left != right


def _parse_string(text: str) -> list | None:
    """Literal text and `{{ expr }}` trees, alternating, or None when it needs Jinja."""
    parts: list = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        tree = _parse_expr(m.group(1))
        if tree is None:
            return None
        parts += [text[pos:m.start()], tree]
        pos = m.end()
    parts.append(text[pos:])
    if any("{" in t or "}" in t for t in parts[::2]):
        return None
    return parts


def _render_string(parts: list, context: dict, where: str) -> str:
    return "".join(p if i % 2 == 0 else _str(_eval(p, context, where)) for i, p in enumerate(parts))


def _parse_template(source: str) -> list | None:
    """Lines of text (as _parse_string parts) and ("for", names, tree, body) loops, the way
    Jinja reads them with trim_blocks and lstrip_blocks; None when it needs Jinja."""
    if "\r" in source or re.search(r"\bloop\b", source):
        return None
    top: list = []
    stack = [top]
    for line in source.splitlines(keepends=True):
        m = _FOR.fullmatch(line)
        if m:
            tree = _parse_expr(m.group(2))
            if tree is None:
                return None
            body: list = []
            stack[-1].append(("for", tuple(n.strip() for n in m.group(1).split(",")), tree, body))
            stack.append(body)
        elif _ENDFOR.fullmatch(line):
            if len(stack) == 1:
                return None
            stack.pop()
        else:
            parts = _parse_string(line)
            if parts is None:
                return None
            stack[-1].append(parts)
    return top if len(stack) == 1 else None


def _render_template(nodes: list, context: dict, where: str, out: list) -> None:
    for node in nodes:
        if isinstance(node, list):
            out.append(_render_string(node, context, where))
            continue
        _, names, tree, body = node
        for item in _eval(tree, context, where):
            if len(names) == 1:
                scope = {names[0]: item}
            else:
                values = list(item)
                if len(values) != len(names):
                    raise ValueError(f"cannot unpack {len(values)} values into {', '.join(names)}")
                scope = dict(zip(names, values))
            _render_template(body, {**context, **scope}, where, out)


def _lookup(dotted: str, context: dict, where: str):
    """`a.b[0]` the way Jinja reads it (attribute, then item) with StrictUndefined's errors."""
    parts = re.findall(r"[A-Za-z_]\w*|\[\d+\]", dotted)
    head = parts[0]
    if head in _WORDS or head in _LITERALS or head not in context:
        if head in _LITERALS and len(parts) == 1:
            return _LITERALS[head]
        raise RecipeError(f"{where}: '{head}' is undefined")
    value = context[head]
    for part in parts[1:]:
        if part.startswith("["):
            try:
                value = value[int(part[1:-1])]
            except (IndexError, KeyError, TypeError):
                raise RecipeError(f"{where}: {_type(value)} has no element {part}") from None
            continue
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif not isinstance(value, dict) and hasattr(value, part) and not part.startswith("_"):
            value = getattr(value, part)
        else:
            raise RecipeError(f"{where}: {_type(value)} has no attribute '{part}'")
    return value


def _type(value) -> str:
    # Jinja's wording: "'dict object' has no attribute 'x'"
    return f"'{type(value).__name__} object'" if value is not None else "'None'"


def _str(value) -> str:
    return "None" if value is None else str(value)


def _plain(fn, where: str):
    """Run fn, turning a Python error from the values (iterating None...) into RecipeError."""
    try:
        return fn()
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as e:
        raise RecipeError(f"{where}: {type(e).__name__}: {e}") from None


class Renderer:
    def __init__(self, template_dirs: tuple[Path, ...]):
        self.template_dirs = tuple(template_dirs)   # searched in order: user dirs first
        self._env = None
        self._parsed: dict[tuple[str, str], Any] = {}   # fast-path trees, None: needs Jinja
        self._strings: dict[str, Any] = {}
        self._exprs: dict[str, Any] = {}

    @property
    def env(self):
        if self._env is None:
            import jinja2
            self._env = jinja2.Environment(
                loader=jinja2.FileSystemLoader([str(d) for d in self.template_dirs]),
                undefined=jinja2.StrictUndefined,
                autoescape=False,
                keep_trailing_newline=True,
                trim_blocks=True,
                lstrip_blocks=True,
            )
        return self._env

    def _fast(self, kind: str, text: str, parse):
        key = (kind, text)
        if key not in self._parsed:
            self._parsed[key] = parse()
        return self._parsed[key]

    def string(self, text: str, context: dict, where: str) -> str:
        """Render a short template string (a path, an env value)."""
        if "{" not in text:
            return text
        parts = self._fast("string", text, lambda: _parse_string(text))
        if parts is not None:
            return _plain(lambda: _render_string(parts, context, where), where)
        tmpl = self._strings.get(text)
        if tmpl is None:
            tmpl = self._strings[text] = self._compile(lambda: self.env.from_string(text), where)
        return self._run(lambda: tmpl.render(context), where)

    def expr(self, text: str, context: dict, where: str):
        """Evaluate a Jinja expression (`when`, `each`)."""
        tree = self._fast("expr", text, lambda: _parse_expr(text))
        if tree is not None:
            return _plain(lambda: _eval(tree, context, where), where)
        fn = self._exprs.get(text)
        if fn is None:
            fn = self._exprs[text] = self._compile(
                lambda: self.env.compile_expression(text, undefined_to_none=False), where)
        value = self._run(lambda: fn(**context), where)
        import jinja2
        if isinstance(value, jinja2.Undefined):
            self._run(lambda: str(value), where)   # raises the StrictUndefined error
        return value

    def template(self, name: str, context: dict, where: str) -> str:
        nodes = self._fast("template", name, lambda: _parse_template(self.source(name, where)))
        if nodes is not None:
            out: list[str] = []
            _plain(lambda: _render_template(nodes, context, where, out), where)
            return "".join(out)
        tmpl = self._compile(lambda: self.env.get_template(name), where)
        return self._run(lambda: tmpl.render(context), where)

    def source(self, name: str, where: str) -> str:
        """A template file's text, found the way Jinja's loader finds it (no '..')."""
        pieces = [p for p in name.split("/") if p and p != "."]
        for d in self.template_dirs if pieces and ".." not in pieces else ():
            p = d.joinpath(*pieces)
            if p.is_file():
                try:
                    return p.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as e:
                    raise RecipeError(f"{where}: cannot read template {p}: {e}") from None
        raise RecipeError(f"{where}: template not found: {name}")

    def check(self, text: str, where: str, expression: bool = False) -> None:
        """Syntax check only (used by `closure recipes show` and the tests)."""
        if expression:
            self._compile(lambda: self.env.compile_expression(text), where)
        else:
            self._compile(lambda: self.env.from_string(text), where)

    def check_template(self, name: str, where: str) -> None:
        self._compile(lambda: self.env.get_template(name), where)

    @staticmethod
    def _compile(fn, where: str):
        import jinja2
        try:
            return fn()
        except jinja2.TemplateNotFound as e:
            raise RecipeError(f"{where}: template not found: {e.name}") from None
        except jinja2.TemplateSyntaxError as e:
            raise RecipeError(f"{where}: template syntax error: {e.message} (line {e.lineno})") from None

    @staticmethod
    def _run(fn, where: str):
        import jinja2
        try:
            return _plain(fn, where)
        except jinja2.UndefinedError as e:
            raise RecipeError(f"{where}: {e.message}") from None
        except jinja2.TemplateError as e:
            raise RecipeError(f"{where}: {e}") from None

"""Jinja2 for recipes: one environment per RecipeSet, StrictUndefined, compiled once.

Every string a recipe holds (paths, `when`, `each`, env values) and every template file is
evaluated here against the fixed context the engine builds. A name the context lacks is an
error naming the recipe and the key, never an empty string in a path. jinja2 is imported on
first use only: loading recipes for `closure recipes list` must not pay for it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .schema import RecipeError

_NAME = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[\d+\])*"
_PLACEHOLDER = re.compile(r"\{\{\s*(" + _NAME + r")\s*\}\}")
_SIMPLE_STRING = re.compile(r"(?:[^{}]|\{\{\s*" + _NAME + r"\s*\}\})*")
_TERM = r"\s*(?:not\s+)?" + _NAME + r"\s*"
_BOOL_EXPR = re.compile(_TERM + r"(?:(?:and|or)" + _TERM + r")*")
_KEYWORDS = frozenset({"not", "and", "or", "in", "is", "if", "else", "true", "false", "none",
                       "True", "False", "None"})


def _lookup(dotted: str, context: dict, where: str):
    """`a.b[0]` the way Jinja reads it (attribute, then item) with StrictUndefined's errors."""
    parts = re.findall(r"[A-Za-z_]\w*|\[\d+\]", dotted)
    head = parts[0]
    if head in _KEYWORDS or head not in context:
        if head in ("true", "True", "false", "False", "none", "None") and len(parts) == 1:
            return {"true": True, "True": True, "false": False, "False": False}.get(head)
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


def _bool_expr(text: str, context: dict, where: str):
    """`or` of `and`s of optionally negated names, short-circuiting like Python."""
    value = None
    for alternative in re.split(r"\s+or\s+", text.strip()):
        value = True
        for term in re.split(r"\s+and\s+", alternative.strip()):
            term = term.strip()
            negate = term.startswith("not ") or term.startswith("not\t")
            v = _lookup(term[3:].strip() if negate else term, context, where)
            value = (not v) if negate else v
            if not value:
                break
        if value:
            return value
    return value


def _type(value) -> str:
    # Jinja's wording: "'dict object' has no attribute 'x'"
    return f"'{type(value).__name__} object'" if value is not None else "'None'"


def _str(value) -> str:
    return "None" if value is None else str(value)


class Renderer:
    def __init__(self, template_dirs: tuple[Path, ...]):
        self.template_dirs = tuple(template_dirs)   # searched in order: user dirs first
        self._env = None
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

    def string(self, text: str, context: dict, where: str) -> str:
        """Render a short template string (a path, an env value)."""
        if "{" not in text:
            return text
        if _SIMPLE_STRING.fullmatch(text):
            # Only `{{ a.b }}` placeholders: look them up directly. Compiling a Jinja
            # template costs ~1 ms, and most recipe strings are like this.
            return _PLACEHOLDER.sub(lambda m: _str(_lookup(m.group(1), context, where)), text)
        tmpl = self._strings.get(text)
        if tmpl is None:
            tmpl = self._strings[text] = self._compile(lambda: self.env.from_string(text), where)
        return self._run(lambda: tmpl.render(context), where)

    def expr(self, text: str, context: dict, where: str):
        """Evaluate a Jinja expression (`when`, `each`)."""
        if _BOOL_EXPR.fullmatch(text):
            # `a.b`, `not a`, `a and not b.c or d`: evaluated here with Python's (and
            # Jinja's) semantics; anything richer goes to Jinja.
            return _bool_expr(text, context, where)
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
        tmpl = self._compile(lambda: self.env.get_template(name), where)
        return self._run(lambda: tmpl.render(context), where)

    def source(self, name: str, where: str) -> str:
        """A template file's text, found the way rendering finds it."""
        for d in self.template_dirs:
            p = d / name
            if p.is_file():
                return p.read_text(encoding="utf-8")
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
            return fn()
        except jinja2.UndefinedError as e:
            raise RecipeError(f"{where}: {e.message}") from None
        except jinja2.TemplateError as e:
            raise RecipeError(f"{where}: {e}") from None
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as e:
            raise RecipeError(f"{where}: {type(e).__name__}: {e}") from None

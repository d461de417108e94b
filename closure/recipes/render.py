"""Jinja2 for recipes: one environment per RecipeSet, StrictUndefined, compiled once.

Every string a recipe holds (paths, `when`, `each`, env values) and every template file is
evaluated here against the fixed context the engine builds. A name the context lacks is an
error naming the recipe and the key, never an empty string in a path. jinja2 is imported on
first use only: loading recipes for `closure recipes list` must not pay for it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .schema import RecipeError


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
        tmpl = self._strings.get(text)
        if tmpl is None:
            tmpl = self._strings[text] = self._compile(lambda: self.env.from_string(text), where)
        return self._run(lambda: tmpl.render(context), where)

    def expr(self, text: str, context: dict, where: str):
        """Evaluate a Jinja expression (`when`, `each`)."""
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

    def names_used(self, text: str | None = None, template: str | None = None) -> frozenset[str]:
        """The context names a string or template file reads (for the engine's change check)."""
        from jinja2 import meta
        if template is not None:
            src, _, _ = self.env.loader.get_source(self.env, template)
        else:
            src = text or ""
        return frozenset(meta.find_undeclared_variables(self.env.parse(src)))

    def names_used_expr(self, text: str) -> frozenset[str]:
        return self.names_used("{{ " + text + " }}")

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

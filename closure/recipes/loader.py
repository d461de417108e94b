"""Finding and reading recipe files: the built-ins shipped with closure, then user dirs.

A recipe's name is its file name without `.toml`; a recipe in a later directory replaces
one of the same name from an earlier one (user dirs override built-ins, the last --recipes
DIR wins). Templates are looked up the same way: user template dirs first.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from ..errors import read_input
from .probes import check_call
from .schema import Recipe, RecipeError, parse_recipe

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def builtin_dir() -> Path:
    """recipes/ at the top of a source checkout, else closure/data/recipes in a wheel."""
    import closure
    pkg = Path(closure.__file__).resolve().parent
    checkout = pkg.parent / "recipes"
    # Only trust the checkout dir next to a pyproject.toml: in a wheel install the parent
    # is site-packages, where some other project's "recipes" dir may live.
    if checkout.is_dir() and (pkg.parent / "pyproject.toml").is_file():
        return checkout
    data = pkg / "data" / "recipes"
    if data.is_dir():
        return data
    raise RecipeError(f"built-in recipes not found (looked in {checkout} and {data})")


def load_dir(directory: Path, builtin: bool) -> dict[str, Recipe]:
    out: dict[str, Recipe] = {}
    for path in sorted(directory.glob("*.toml")):
        name = path.stem
        if not _NAME.match(name):
            raise RecipeError(f"{path}: recipe file names must be lower-case "
                              f"letters, digits, '-' and '_' (got {name!r})")
        try:
            # read_input: a FIFO or device among the recipes is refused, not waited on
            data = tomllib.loads(read_input(str(path), f"recipe {path}", 1 << 20).decode("utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise RecipeError(f"{path}: invalid TOML: {e}") from None
        except UnicodeDecodeError:
            raise RecipeError(f"{path}: invalid TOML: not UTF-8 text") from None
        except RecursionError:
            raise RecipeError(f"{path}: invalid TOML: nested too deeply") from None
        out[name] = parse_recipe(name, data, str(path), builtin=builtin, probe_check=check_call)
    return out


def load_all(user_dirs=()) -> tuple[dict[str, Recipe], tuple[Path, ...]]:
    """All recipes by name (overrides applied) and the template dirs, highest priority first."""
    dirs = [(builtin_dir(), True)]
    for d in user_dirs:
        p = Path(d)
        if not p.is_dir():
            raise RecipeError(f"--recipes {d}: not a directory")
        dirs.append((p, False))
    recipes: dict[str, Recipe] = {}
    for d, builtin in dirs:
        recipes.update(load_dir(d, builtin))
    templates = tuple(d / "templates" for d, _ in reversed(dirs) if (d / "templates").is_dir())
    return dict(sorted(recipes.items())), templates

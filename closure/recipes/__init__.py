"""Recipes: the runtime files programs need beyond their ELF closure (CA bundles, NSS,
locales, zone files, interpreters' libraries), as TOML data plus Jinja2 templates.

    from closure.recipes import RecipeSet, RecipeVars
    recipes = RecipeSet.load(user_dirs)          # built-ins + --recipes DIRs
    recipes.apply(collector, RecipeVars.from_options(tz="Europe/Paris"))
"""
from .engine import RecipeSet, match
from .probes import PROBES, Hit, ProbeContext
from .schema import Action, ProbeCall, Recipe, RecipeError, Trigger
from .vars import CACert, RecipeVars, read_ca_cert

__all__ = [
    "Action", "CACert", "Hit", "PROBES", "ProbeCall", "ProbeContext", "Recipe", "RecipeError",
    "RecipeSet", "RecipeVars", "Trigger", "match", "read_ca_cert",
]

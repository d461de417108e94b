"""Build options the recipes read, declared once for build, analyze, explain and slim.

A command adds the ones it offers to its signature and passes them to `recipe_vars()`,
which checks them (BadInput -> exit 2) and reads the --ca-cert files.
"""
from __future__ import annotations

from typing import List, Optional

import typer

from .options import grouped_options

CaCertOpt = typer.Option(
    None, "--ca-cert", metavar="PEM",
    help="Append this CA certificate to the image's CA bundles (repeatable): corporate or test CAs.")
LocaleOpt = typer.Option(
    None, "--locale", metavar="NAME",
    help="Add this locale's data, e.g. fr_FR.UTF-8 (repeatable). C.UTF-8 is always there.")
TzOpt = typer.Option(
    None, "--tz", metavar="AREA/CITY",
    help="The image's time zone: adds its zone file and /etc/localtime, e.g. Europe/Paris.")
TzdataOpt = typer.Option(
    None, "--tzdata", metavar="ZONE",
    help="More zone files: 'all', an area (Europe) or a zone (repeatable).")
GconvOpt = typer.Option(
    None, "--gconv", metavar="CHARSET",
    help="iconv charsets beside the default set, e.g. EUC-JP (repeatable), or 'all'.")
NssOpt = typer.Option(
    None, "--nss", metavar="SERVICE",
    help="NSS services to add beside files and dns, e.g. systemd (repeatable).")
PycacheOpt = typer.Option(False, "--pycache", help="Keep Python's __pycache__ bytecode (bigger, faster start).")


def recipe_vars(
    *,
    user: Optional[str] = None,
    ca_cert: Optional[list[str]] = None,
    locale: Optional[list[str]] = None,
    tz: Optional[str] = None,
    tzdata: Optional[list[str]] = None,
    gconv: Optional[list[str]] = None,
    nss: Optional[list[str]] = None,
    pycache: bool = False,
):
    """RecipeVars from CLI values (None for an option a command does not offer)."""
    from ..recipes.vars import RecipeVars
    return RecipeVars.from_options(
        user=user, locales=tuple(locale or ()), tz=tz, tzdata=tuple(tzdata or ()),
        ca_certs=tuple(ca_cert or ()), gconv=tuple(gconv or ()), nss=tuple(nss or ()),
        pycache=pycache)


class RecipeOptions:
    """The recipe options as given on the command line; .vars() checks them (exit 2)."""

    def __init__(self, **values):
        self.values = values

    def vars(self, user: Optional[str] = None):
        return recipe_vars(user=user, **self.values)


_RECIPE_PARAMS = (
    ("ca_cert", Optional[List[str]], CaCertOpt),
    ("locale", Optional[List[str]], LocaleOpt),
    ("tz", Optional[str], TzOpt),
    ("tzdata", Optional[List[str]], TzdataOpt),
    ("gconv", Optional[List[str]], GconvOpt),
    ("nss", Optional[List[str]], NssOpt),
    ("pycache", bool, PycacheOpt),
)

# Give a command --ca-cert, --locale, --tz, --tzdata, --gconv, --nss, --pycache, received as
# one RecipeOptions in its `recipe_options` parameter.
with_recipe_options = grouped_options(_RECIPE_PARAMS, "recipe_options", RecipeOptions)

"""The portal's look: Carnet's own stylesheet, or the French State's design system (DSFR) for an
operator that is a State body.

The DSFR (`@gouvfr/dsfr` on npm) is open code, but its terms of use reserve the State's identity
(the Marianne block, its fonts and colours) to State services, and its package installs only once
those terms are accepted (its own install step asks). So it is never the default: the operator
sets ``web_theme=dsfr`` after installing it (`make dsfr`, docs/web.md), and Carnet serves its
files from ``web_dsfr_dir`` itself, never from a CDN.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from carnet.settings import Settings

THEMES = ("carnet", "dsfr")
DSFR_PATH = "/static/dsfr"  # the DSFR's dist folder, served as it is (fonts, icons, CSS)
DSFR_STYLESHEET = "dsfr.min.css"


class ThemeUnavailableError(RuntimeError):
    """The DSFR theme is chosen but its files are not there: the app does not start half-styled."""


def mount_theme(app: FastAPI, settings: Settings) -> None:
    """Serve the DSFR's files when it is the chosen theme (nothing for Carnet's own)."""
    if settings.web_theme != "dsfr":
        return
    folder = settings.web_dsfr_dir
    if not (folder / DSFR_STYLESHEET).is_file():
        raise ThemeUnavailableError(
            f"web_theme is dsfr but {folder / DSFR_STYLESHEET} is missing: install @gouvfr/dsfr "
            "(`make dsfr`, after accepting its terms of use) or set web_dsfr_dir"
        )
    app.mount(DSFR_PATH, StaticFiles(directory=folder), name="dsfr")

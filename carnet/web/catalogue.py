"""The pages' message catalogues, for maintainers and the tests: extract every translatable text
(``_``, ``gettext``, ``ngettext``, ``N_``) of the templates and Python of one area, and bring that
area's .po file up to date with it (new texts added untranslated, gone ones dropped).

Each area keeps its own catalogue, so areas never edit the same file: the core (carnet/web itself)
``locale/<lang>/LC_MESSAGES/messages.po``, each sub-package ``carnet/web/<area>/`` its
``<area>.po`` beside it. At run time every .po of a language is merged (carnet/web/i18n.py).

    python -m carnet.web.catalogue         # refresh every area's catalogue of every language
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from carnet.web.i18n import DEFAULT_LOCALE, LOCALE_DIR, LOCALES

WEB_DIR = Path(__file__).parent
CORE = "messages"
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def areas() -> list[str]:
    """The core and every sub-package of carnet/web (pro, patient_controls...)."""
    packages = sorted(p.name for p in WEB_DIR.iterdir() if (p / "__init__.py").exists())
    return [CORE, *packages]


def area_dir(area: str) -> Path:
    return WEB_DIR if area == CORE else WEB_DIR / area


def po_path(area: str, locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{area}.po"


def extract_messages(area: str = CORE) -> Catalog:
    """Every message id the area uses, with where it is used."""
    root = area_dir(area)
    others = set(areas()) - {CORE}

    def in_area(path: str) -> bool:
        # The core's extraction leaves the sub-packages to their own catalogues.
        relative = Path(path).relative_to(root)
        return not (area == CORE and relative.parts and relative.parts[0] in others)

    catalogue = Catalog(locale=DEFAULT_LOCALE, domain=area)
    for filename, lineno, message, comments, context in extract_from_dir(
        root, METHODS, OPTIONS, KEYWORDS, strip_comment_tags=True, directory_filter=in_area
    ):
        catalogue.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalogue


def refresh(area: str, locale: str) -> Catalog:
    """The .po catalogue of ``area`` in ``locale`` updated with the extracted ids, written back."""
    path = po_path(area, locale)
    template = extract_messages(area)
    if path.exists():
        with path.open("rb") as po:
            catalogue = read_po(po, locale=locale)
    else:
        catalogue = Catalog(locale=locale, domain=area)
    catalogue.update(template, no_fuzzy_matching=True)
    catalogue.obsolete.clear()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        write_po(out, catalogue, sort_output=True, width=100, omit_header=False)
    return catalogue


if __name__ == "__main__":
    for code in LOCALES:
        if code != DEFAULT_LOCALE:
            for name in areas():
                refresh(name, code)

"""The pages' Jinja2 environment and ``render``: autoescaped templates, translated with Babel,
formatted the French way, served with the pages' security headers.

In a template: ``{{ _("Texte en français") }}`` or ``{% trans %}...{% endtrans %}`` (French is the
message id), filters ``date``, ``datetime`` and ``decimal`` in the page's language, ``csrf_token``
for forms (or the ``forms.csrf()`` macro), ``caller`` (the Principal, or None), ``locale``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from carnet.caller import Principal
from carnet.dependencies import services_of
from carnet.web import formatting
from carnet.web.flash import FLASH_COOKIE, pending_flash
from carnet.web.i18n import LANGUAGE_COOKIE, LANGUAGE_NAMES, LOCALES, negotiate, translations
from carnet.web.security import (
    FORM_COOKIE,
    new_form_token,
    page_headers,
    secure_cookies,
    usable_token,
)

WEB_DIR = Path(__file__).parent
TEMPLATE_DIR = WEB_DIR / "templates"
# Each area keeps its templates in carnet/web/<area>/templates/<area>/: "pro/find.html".
AREA_TEMPLATE_DIRS = sorted(WEB_DIR.glob("*/templates"))


def _newstyle(translate: Callable[[str], str]) -> Callable[..., Markup]:
    """gettext for templates: the translation is ours (trusted), the values put in it escaped."""

    def gettext(message: str, **values: Any) -> Markup:
        text = Markup(translate(message))  # noqa: S704 - our catalogue's text, not a value
        return text % values if values else text

    return gettext


def _newstyle_plural(translate: Callable[[str, str, int], str]) -> Callable[..., Markup]:
    def ngettext(singular: str, plural: str, n: int, **values: Any) -> Markup:
        text = Markup(translate(singular, plural, n))  # noqa: S704 - our catalogue's text
        return text % {"num": n, **values}

    return ngettext


@pass_context
def _date(context: Context, value: Any) -> str:
    return formatting.format_date(value, context["locale"])


@pass_context
def _datetime(context: Context, value: Any) -> str:
    return formatting.format_datetime(value, context["locale"])


@pass_context
def _decimal(context: Context, value: Any) -> str:
    return formatting.format_decimal(value, context["locale"])


def build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader([TEMPLATE_DIR, *AREA_TEMPLATE_DIRS]),
        autoescape=True,
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.policies["ext.i18n.trimmed"] = True
    env.newstyle_gettext = True  # type: ignore[attr-defined]
    env.filters["date"] = _date
    env.filters["datetime"] = _datetime
    env.filters["decimal"] = _decimal
    env.globals["LANGUAGE_NAMES"] = LANGUAGE_NAMES
    env.globals["LOCALES"] = LOCALES
    return env


ENVIRONMENT = build_environment()


def page_locale(request: Request) -> str:
    return negotiate(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))


def translator(locale: str) -> Callable[[str], str]:
    """gettext of ``locale`` for texts made in Python (flash messages, labels)."""
    return translations(locale).gettext


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    caller: Principal | None = None,
    csrf_token: str | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The page ``template`` in the request's language, with the pages' headers.

    ``csrf_token``: the signed-in caller's (``PageCaller.csrf_token``); without it, forms get a
    double-submit token (set as a cookie here) for the anonymous pages."""
    locale = page_locale(request)
    catalogue = translations(locale)
    new_form_cookie: str | None = None
    if csrf_token is None:
        csrf_token = usable_token(request.cookies.get(FORM_COOKIE))
        if csrf_token is None:
            csrf_token = new_form_cookie = new_form_token()
    flash = pending_flash(request)
    settings = services_of(request).settings
    values = {
        "theme": settings.web_theme,
        "request": request,
        "locale": locale,
        "caller": caller,
        "csrf_token": csrf_token,
        "flash": flash,
        "current_path": request.url.path,
        "gettext": _newstyle(catalogue.gettext),
        "_": _newstyle(catalogue.gettext),
        "ngettext": _newstyle_plural(catalogue.ngettext),
        **(context or {}),
    }
    html = ENVIRONMENT.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status, headers={**page_headers(), **(headers or {})})
    secure = secure_cookies(settings)
    if new_form_cookie is not None:
        response.set_cookie(
            FORM_COOKIE, new_form_cookie, path="/", httponly=True, samesite="strict", secure=secure
        )
    if request.cookies.get(FLASH_COOKIE) is not None:
        response.delete_cookie(FLASH_COOKIE, path="/", httponly=True, samesite="strict")
    return response

"""Templates: values are escaped, one h1 per page, form errors tied to their field."""

from __future__ import annotations

from carnet.web.i18n import translations
from carnet.web.templating import ENVIRONMENT, _newstyle


def _render_string(source: str, **values: object) -> str:
    gettext = _newstyle(translations("fr").gettext)
    return ENVIRONMENT.from_string(source).render(
        locale="fr", csrf_token="tok", _=gettext, gettext=gettext, **values
    )


def test_values_are_escaped_in_templates_and_in_translated_texts() -> None:
    out = _render_string(
        "<p>{{ v }}</p>{{ _('Bonjour %(name)s', name=v) }}", v="<script>x</script>"
    )
    assert "<script>" not in out
    assert out.count("&lt;script&gt;") == 2


def test_a_field_error_is_linked_to_its_input_and_listed_in_the_summary() -> None:
    source = (
        '{% import "macros/forms.html" as forms with context %}'
        "{{ forms.error_summary(errors) }}"
        "{{ forms.field('code', 'Code', errors=errors, hint='6 chiffres') }}"
    )
    gettext = _newstyle(translations("fr").gettext)
    out = ENVIRONMENT.from_string(source).render(
        locale="fr",
        csrf_token="tok",
        _=gettext,
        gettext=gettext,
        ngettext=lambda s, p, n, **v: s if n == 1 else p % {"num": n},
        errors={"code": "Le code est faux."},
    )
    assert 'aria-describedby="f-code-hint f-code-error"' in out
    assert 'aria-invalid="true"' in out
    assert 'id="f-code-error">Le code est faux.</p>' in out
    assert '<a href="#f-code">Le code est faux.</a>' in out


def test_the_layout_gives_one_h1_a_skip_link_and_the_language() -> None:
    source = '{% extends "base.html" %}{% block title %}Titre{% endblock %}'
    gettext = _newstyle(translations("fr").gettext)
    out = ENVIRONMENT.from_string(source).render(
        locale="fr",
        csrf_token="tok",
        _=gettext,
        gettext=gettext,
        caller=None,
        flash=None,
        theme="carnet",
        current_path="/",
    )
    assert out.count("<h1") == 1
    assert '<html lang="fr">' in out
    assert '<a class="skip-link" href="#contenu">' in out
    assert '<main id="contenu"' in out

"""The workspace's long-lived helpers, one per application: the patient finder and the in-record
search (whose analyses cache must outlive a request), built once with the application's services (carnet/app.py)."""

from __future__ import annotations

from fastapi import Request

from carnet.dependencies import services_of
from carnet.identity.lookup import PatientFinder
from carnet.record.search import RecordSearch
from carnet.web.i18n import N_
from carnet.web.templating import page_locale, translator

# The reasons of an emergency access (carnet/policy/controls.py), in words.
EMERGENCY_REASONS = [
    ("unconscious", N_("Patient inconscient")),
    ("life-threatening", N_("Pronostic vital engagé")),
    ("unable-to-consent", N_("Patient hors d'état d'exprimer sa volonté")),
    ("other-emergency", N_("Autre urgence")),
]


def finder_of(request: Request) -> PatientFinder:
    return services_of(request).finder


def record_search_of(request: Request) -> RecordSearch:
    return services_of(request).record_search


def options(request: Request, choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``choices`` for a select, their labels translated, after an empty "Choisir" option."""
    translate = translator(page_locale(request))
    return [("", translate(N_("Choisir"))), *((v, translate(label)) for v, label in choices)]

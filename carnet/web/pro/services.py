"""The workspace's long-lived helpers, one per application: the patient finder and the in-record
search (whose analyses cache must outlive a request), built from the application's services and
kept on the application's state."""

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
    state = request.app.state
    found: PatientFinder | None = getattr(state, "pro_finder", None)
    if found is None:
        services = services_of(request)
        found = state.pro_finder = PatientFinder(services.fhir, services.crypto.blind)
    return found


def record_search_of(request: Request) -> RecordSearch:
    state = request.app.state
    found: RecordSearch | None = getattr(state, "pro_record_search", None)
    if found is None:
        found = state.pro_record_search = RecordSearch(services_of(request).fhir)
    return found


def options(request: Request, choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``choices`` for a select, their labels translated, after an empty "Choisir" option."""
    translate = translator(page_locale(request))
    return [("", translate(N_("Choisir"))), *((v, translate(label)) for v, label in choices)]

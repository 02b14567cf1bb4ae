"""The hub pages' forms: each field read, checked with a message in the page's words, then handed
to the hub's own parsers (``Application.from_json``, ``table_request``), which stay the rule.

A form with an error is shown again with what was typed and one message per field; nothing is
stored until every field is right.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from carnet.hub.application import Application
from carnet.hub.disclosure.profiles import PRESETS
from carnet.hub.errors import HubError
from carnet.hub.omop.spec import OMOP_TABLES
from carnet.web.i18n import N_

APPLICATION_FIELDS = (
    "title",
    "organisation",
    "purpose",
    "public_interest",
    "legal_basis",
    "team",
    "datasets",
    "variables",
    "population",
    "period_start",
    "period_end",
    "duration_months",
    "deidentification",
    "deidentification_reason",
    "dates",
    "k_threshold",
    "disclosure_profile",
)
REQUIRED_TEXT = {
    "title": N_("Donnez un titre au projet."),
    "organisation": N_("Indiquez l'organisme responsable."),
    "purpose": N_("Décrivez la finalité du traitement."),
    "public_interest": N_("Justifiez l'intérêt public du projet."),
    "legal_basis": N_("Indiquez la base légale."),
    "population": N_("Décrivez la population étudiée."),
    "deidentification_reason": N_("Expliquez pourquoi ce niveau de désidentification."),
}
DEIDENTIFICATION = {"pseudonymised": N_("pseudonymisées"), "anonymised": N_("anonymisées")}
DATE_HANDLING = {
    "shift": N_("décalées par personne"),
    "year": N_("année seule"),
    "month": N_("mois et année"),
    "exact": N_("exactes"),
}
STATISTICS = {"count": N_("effectifs"), "sum": N_("somme"), "mean": N_("moyenne")}
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def text_of(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _list(text: str) -> list[str]:
    return [item.strip() for item in re.split(r"[,;\n]", text) if item.strip()]


def parse_variables(text: str) -> dict[str, list[str]] | None:
    """``person: year_of_birth, gender_concept_id`` one table a line (no columns: all of them);
    None when a line names no OMOP CDM 5.4 table or a column is not a plain name."""
    variables: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        table, _, columns = line.partition(":")
        table = table.strip().lower()
        names = [c.lower() for c in _list(columns)]
        if table not in OMOP_TABLES or not all(_IDENTIFIER.match(c) for c in names):
            return None
        variables[table] = names
    return variables or None


@dataclass(frozen=True)
class ApplicationForm:
    values: dict[str, str]
    errors: dict[str, str]
    application: Application | None


def read_application(form: Mapping[str, Any]) -> ApplicationForm:
    """The application typed in the form, or the errors to show (French message ids)."""
    values = {name: text_of(form, name) for name in APPLICATION_FIELDS}
    errors = {name: message for name, message in REQUIRED_TEXT.items() if not values[name]}
    variables = parse_variables(values["variables"])
    if variables is None:
        errors["variables"] = N_(
            "Une table du modèle OMOP par ligne, suivie de ses variables : « person: "
            "year_of_birth, gender_concept_id »."
        )
    if not _list(values["datasets"]):
        errors["datasets"] = N_("Choisissez au moins un jeu de données du catalogue.")
    start, end = values["period_start"], values["period_end"]
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", start):
        errors["period_start"] = N_("Indiquez le début de la période (AAAA-MM-JJ).")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", end) or (
        not errors.get("period_start") and end < start
    ):
        errors["period_end"] = N_("Indiquez la fin de la période, après son début.")
    if not values["duration_months"].isdigit() or not 1 <= int(values["duration_months"]) <= 60:
        errors["duration_months"] = N_("Une durée entre 1 et 60 mois.")
    if not values["k_threshold"].isdigit() or not 2 <= int(values["k_threshold"]) <= 100:
        errors["k_threshold"] = N_("Un seuil k entre 2 et 100.")
    if values["deidentification"] not in DEIDENTIFICATION:
        errors["deidentification"] = N_("Choisissez pseudonymisées ou anonymisées.")
    if values["dates"] not in DATE_HANDLING:
        errors["dates"] = N_("Choisissez le traitement des dates.")
    if values["disclosure_profile"] not in PRESETS:
        errors["disclosure_profile"] = N_("Choisissez un profil de contrôle des résultats.")
    if errors:
        return ApplicationForm(values, errors, None)
    body = {
        "title": values["title"],
        "organisation": values["organisation"],
        "purpose": values["purpose"],
        "publicInterest": values["public_interest"],
        "legalBasis": values["legal_basis"],
        "team": _list(values["team"]),
        "datasets": _list(values["datasets"]),
        "variables": variables,
        "population": values["population"],
        "periodStart": start,
        "periodEnd": end,
        "durationMonths": int(values["duration_months"]),
        "deidentification": values["deidentification"],
        "deidentificationReason": values["deidentification_reason"],
        "dates": values["dates"],
        "kThreshold": int(values["k_threshold"]),
        "disclosureProfile": values["disclosure_profile"],
    }
    try:
        return ApplicationForm(values, {}, Application.from_json(body))
    except HubError:  # a limit the service holds and this form does not (a text too long)
        return ApplicationForm(values, {"title": N_("Une des réponses est trop longue.")}, None)


def application_values(application: Application) -> dict[str, str]:
    """An application as the form's values (to show it in the page)."""
    return {
        "variables": "\n".join(
            f"{table}: {', '.join(columns)}" if columns else table
            for table, columns in application.variables.items()
        ),
        "team": ", ".join(application.team),
        "datasets": ", ".join(application.datasets),
    }


def new_application_values() -> dict[str, str]:
    values = dict.fromkeys(APPLICATION_FIELDS, "")
    values.update(
        datasets="carnet-record",
        duration_months="24",
        deidentification="pseudonymised",
        dates="shift",
        k_threshold="5",
        disclosure_profile="opensafely",
    )
    return values

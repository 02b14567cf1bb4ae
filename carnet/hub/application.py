"""A permit application (EHDS art. 67): what a researcher applies for, parsed and checked.

Kept apart from the permit's state machine (permits.py): this is the input's shape and its rules,
shared by the JSON API, the portal's form and the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from carnet.hub.disclosure.profiles import PRESETS
from carnet.hub.errors import HubError
from carnet.hub.omop.spec import OMOP_TABLES


def _text(value: Any, name: str, limit: int = 4000) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise HubError(400, f"{name} is required text (at most {limit} characters)")
    return value.strip()


@dataclass(frozen=True)
class Application:
    """What a researcher applies for."""

    title: str
    organisation: str
    purpose: str
    public_interest: str
    legal_basis: str
    team: tuple[str, ...]
    datasets: tuple[str, ...]
    variables: Mapping[str, tuple[str, ...]]
    population: str
    period_start: str
    period_end: str
    duration_months: int
    deidentification: str
    deidentification_reason: str
    dates: str = "shift"
    k_threshold: int = 5
    disclosure_profile: str = "opensafely"

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Application:
        """Parse and check an application; HubError(400) names the first bad field."""
        try:
            variables = {
                str(t): tuple(str(c) for c in cols) for t, cols in body["variables"].items()
            }
            application = cls(
                title=_text(body.get("title"), "title", 200),
                organisation=_text(body.get("organisation"), "organisation", 200),
                purpose=_text(body.get("purpose"), "purpose"),
                public_interest=_text(body.get("publicInterest"), "publicInterest"),
                legal_basis=_text(body.get("legalBasis"), "legalBasis", 200),
                team=tuple(str(m) for m in body.get("team", [])),
                datasets=tuple(str(d) for d in body["datasets"]),
                variables=variables,
                population=_text(body.get("population"), "population"),
                period_start=str(body["periodStart"]),
                period_end=str(body["periodEnd"]),
                duration_months=int(body["durationMonths"]),
                deidentification=str(body["deidentification"]),
                deidentification_reason=_text(
                    body.get("deidentificationReason"), "deidentificationReason"
                ),
                dates=str(body.get("dates", "shift")),
                k_threshold=int(body.get("kThreshold", 5)),
                disclosure_profile=str(body.get("disclosureProfile", "opensafely")),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise HubError(
                400, "the application misses a field or has one of the wrong type"
            ) from None
        return application.checked()

    def checked(self) -> Application:
        if not self.datasets:
            raise HubError(400, "datasets: at least one dataset of the catalogue")
        unknown = set(self.variables) - OMOP_TABLES
        if not self.variables or unknown:
            raise HubError(400, "variables: tables of the OMOP CDM 5.4 and their columns")
        if (
            not (len(self.period_start) == len(self.period_end) == 10)
            or self.period_start > self.period_end
        ):
            raise HubError(400, "periodStart and periodEnd are dates (YYYY-MM-DD), in order")
        if not 1 <= self.duration_months <= 60:
            raise HubError(400, "durationMonths is between 1 and 60")
        if self.deidentification not in ("pseudonymised", "anonymised"):
            raise HubError(400, "deidentification is pseudonymised or anonymised")
        if self.dates not in ("shift", "year", "month", "exact"):
            raise HubError(400, "dates is shift, year, month or exact")
        if not 2 <= self.k_threshold <= 100:
            raise HubError(400, "kThreshold is between 2 and 100")
        if self.disclosure_profile not in PRESETS:
            raise HubError(400, "disclosureProfile is one of " + ", ".join(sorted(PRESETS)))
        return self

"""Who is asking: the authenticated caller every request carries into the policy decision point.

A ``Principal`` holds ids and attributes only (no names). The authentication layer builds it from
a bearer token or a session; the CLI acts as the local ``operator``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    PERSON = "person"  # a citizen: the patient, and the representative of those they act for
    PROFESSIONAL = "professional"  # identified by RPPS, with a profession
    APP = "app"  # a SMART app acting for a person (patient/ scopes) or a professional (user/)
    BACKEND = "backend"  # a backend service (client credentials, system/ scopes)
    OPERATOR = "operator"  # the platform's operator scripts (carnet token issue), system/ scopes


PROFESSIONS = (
    "physician",
    "nurse",
    "pharmacist",
    "biologist",
    "midwife",
    "physiotherapist",
    "dentist",
)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``subject`` is the account or client id the audit log records."""

    kind: Kind
    subject: str
    patient_id: str | None = None  # a person's own Patient; an app's launch patient
    rpps: str | None = None
    profession: str | None = None
    client_id: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    organisation: str | None = None

    @property
    def role(self) -> str:
        if self.kind is Kind.PROFESSIONAL and self.profession:
            return f"professional:{self.profession}"
        return self.kind.value


LOCAL_OPERATOR = Principal(Kind.OPERATOR, "local-operator", scopes=frozenset({"system/*.*"}))
"""What in-process callers (the CLI, the importer, the demo loader) act as."""

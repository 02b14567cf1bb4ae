"""Find a patient, as a professional does: by INS, or by the strict traits, never by a name alone.

``PatientFinder`` asks the FHIR Patient search as the caller (so only records the policy lets them
open can be found, and the search is audited as theirs), then keeps only the Patients whose strict
traits equal the ones given, normalised the RNIV way: a search by traits is an identification, not
a fuzzy lookup. "Nothing found" is the one answer for a record that does not exist, one the caller
has no right on, and one that blocks them: a restriction is invisible to the one it restricts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select

from carnet.caller import RequestContext
from carnet.crypto.blind_index import BlindIndexer
from carnet.fhir.service import FhirService
from carnet.identity.ins import (
    INS_SYSTEMS,
    Ins,
    InsStatus,
    InvalidTraits,
    Traits,
    status_from_patient,
    traits_from_patient,
)
from carnet.identity.models import identity, ins_digest
from carnet.identity.nir import InvalidNIR, validate_nir

MAX_FOUND = 20
TRAITS_NEEDED = (
    "a patient is found by their INS, or by all of birth name, first name, birth date and sex:"
    " a name alone is never enough"
)


class PatientLookupError(ValueError):
    """A search that is not asked the way the rules require (the message says which rule)."""


@dataclass(frozen=True)
class FoundPatient:
    """One Patient found; ``qualified`` when its identity is QUAL (the INS may be shown as such)."""

    patient_id: str
    birth_name: str
    given_names: tuple[str, ...]
    birth_date: date
    sex: str
    status: InsStatus
    ins: Ins | None

    @property
    def qualified(self) -> bool:
        return self.status is InsStatus.QUAL and self.ins is not None


class PatientFinder:
    """Finds Patients for a caller, through the FHIR search bound to that caller."""

    def __init__(
        self,
        fhir: FhirService,
        blind: BlindIndexer | None = None,
        *,
        base: str = "urn:carnet:workspace",
    ) -> None:
        self.fhir = fhir
        self.blind = blind  # the INS hashes of the master patient index, for emergencies
        self.base = base

    def by_ins(self, ctx: RequestContext, matricule: str) -> list[FoundPatient]:
        """Patients the caller may open whose INS matricule (NIR or NIA, any INS system) is
        ``matricule``; PatientLookupError for a number that breaks the NIR/NIA rules."""
        try:
            value = validate_nir(matricule.replace(" ", ""))
        except InvalidNIR as exc:
            raise PatientLookupError(f"this INS is not valid: {exc}") from None
        wanted = ",".join(f"{system}|{value}" for system in INS_SYSTEMS)
        found = self._search(ctx, [("identifier", wanted)])
        return [p for p in found if p.ins is not None and p.ins.value == value]

    def by_traits(
        self,
        ctx: RequestContext,
        birth_name: str,
        first_name: str,
        birth_date: str,
        sex: str,
    ) -> list[FoundPatient]:
        """Patients the caller may open whose strict traits are these (birth name, first of the
        birth first names or all of them, birth date, sex); PatientLookupError when one is missing
        or breaks a rule."""
        if not all(v.strip() for v in (birth_name, first_name, birth_date, sex)):
            raise PatientLookupError(TRAITS_NEEDED)
        try:
            traits = Traits.create(birth_name, first_name, birth_date, sex, None)
        except InvalidTraits as exc:
            raise PatientLookupError(str(exc)) from None
        given = " ".join(traits.given_names)
        params = [
            ("family", traits.birth_name),
            ("given", traits.first_given_name),
            ("birthdate", traits.birth_date.isoformat()),
            ("gender", "male" if traits.sex == "M" else "female"),
        ]
        return [
            p
            for p in self._search(ctx, params)
            if p.birth_name == traits.birth_name
            and p.birth_date == traits.birth_date
            and p.sex == traits.sex
            and given in (p.given_names[0], " ".join(p.given_names))
        ]

    def emergency_patient(self, ctx: RequestContext, matricule: str) -> str | None:
        """The record of an INS for an emergency access (the caller has no right on it yet, so
        the FHIR search cannot find it): the master patient index's link, read in a session of
        the caller's so the lookup is audited as theirs (``break-glass-lookup``, ids only).
        None when no active identity has this INS; PatientLookupError for a broken number."""
        if self.blind is None:
            return None
        try:
            value = validate_nir(matricule.replace(" ", ""))
        except InvalidNIR as exc:
            raise PatientLookupError(f"this INS is not valid: {exc}") from None
        digests = [ins_digest(self.blind, Ins(system, value)) for system in INS_SYSTEMS]
        with self.fhir.session(ctx, "break-glass-lookup", "Patient", None) as session:
            found = session.unit.conn.execute(
                select(identity.c.patient_id)
                .where(
                    identity.c.ins_hash.in_(digests),
                    identity.c.state == "active",
                    identity.c.patient_id.is_not(None),
                )
                .limit(2)
            ).all()
            patient = session.current("Patient", found[0][0]) if len(found) == 1 else None
            session.record("break-glass-lookup", "Patient", [])
        if patient is None or patient.deleted:
            return None
        return patient.res_id

    def _search(self, ctx: RequestContext, params: list[tuple[str, str]]) -> list[FoundPatient]:
        bundle = self.fhir.search(
            self.base, "Patient", [*params, ("_count", str(MAX_FOUND))], ctx=ctx
        )
        found = []
        for entry in bundle.get("entry") or []:
            patient = entry.get("resource") or {}
            try:
                traits = traits_from_patient(patient)
            except InvalidTraits:
                continue  # no strict traits: not an identity a professional can recognise
            ins = _ins_of(patient)
            found.append(
                FoundPatient(
                    str(patient.get("id")),
                    traits.birth_name,
                    traits.given_names,
                    traits.birth_date,
                    traits.sex,
                    status_from_patient(patient),
                    ins,
                )
            )
        return found


def _ins_of(patient: dict[str, Any]) -> Ins | None:
    for identifier in patient.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") in INS_SYSTEMS:
            try:
                return Ins.create(str(identifier["system"]), str(identifier.get("value") or ""))
            except InvalidTraits:
                return None
    return None

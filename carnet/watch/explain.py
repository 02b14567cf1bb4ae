"""The evidence a scan reads from the store: what explains a professional's access, and the
digests that compare the professional with the patient.

Care relationships come from the policy's table (the médecin traitant; a care team the patient
declared) and from the record: encounters, appointments and care teams that name the
professional (as a Practitioner with an RPPS identifier), with their dates. Surnames, addresses
and streets of patients and professionals are turned into blind-index digests as they are read
and only the digests are kept. Everything is read through FHIR sessions bound to the watch's own
caller (a backend with read scopes on these types only), so every read is audited like any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from carnet.authn.models import access_account
from carnet.caller import Kind, Principal, RequestContext
from carnet.crypto.blind_index import BlindIndexer, normalise
from carnet.fhir.errors import FhirError
from carnet.fhir.service import FhirService
from carnet.policy.models import access_care
from carnet.watch.features import LOCAL_ZONE, Evidence, Window
from carnet.watch.models import watch_flag

RPPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
WATCH_CLIENT = "carnet-watch"
_TYPES = ("Patient", "Practitioner", "PractitionerRole", "Encounter", "Appointment", "CareTeam")
WATCH_PRINCIPAL = Principal(
    Kind.BACKEND,
    WATCH_CLIENT,
    client_id=WATCH_CLIENT,
    scopes=frozenset(f"system/{t}.rs" for t in _TYPES),
)
PAGE = "200"


def watch_context(source: str = "127.0.0.1") -> RequestContext:
    """The caller of the watch's reads: purpose ``security``, in every patient's history."""
    return RequestContext(WATCH_PRINCIPAL, WATCH_CLIENT, source=source, purpose="security")


def rpps_of(value: str) -> str:
    """An RPPS number as the policy keeps it (identifiers may carry the national prefix 8)."""
    return value[1:] if len(value) == 12 and value.startswith("8") else value


class EvidenceReader:
    """Builds the ``Evidence`` of a scan for the (actor, patient) pairs it must explain."""

    def __init__(self, engine: Engine, fhir: FhirService, blind: BlindIndexer, base: str) -> None:
        self.engine = engine
        self.fhir = fhir
        self.blind = blind
        self.base = base
        self.ctx = watch_context()
        self._practitioner_rpps: dict[str, str | None] = {}

    def read(self, pairs: set[tuple[str, str]], days: set[date]) -> Evidence:
        evidence = Evidence()
        actors = {a for a, _ in pairs}
        rpps = self._rpps(actors)
        by_rpps: dict[str, list[str]] = {}
        for actor, number in rpps.items():
            by_rpps.setdefault(number, []).append(actor)
        explained = self._policy_care(evidence, pairs, rpps)
        for patient_id in sorted({p for a, p in pairs if (a, p) not in explained}):
            self._record_care(evidence, patient_id, by_rpps, days)
            self._patient_digests(evidence, patient_id)
        for actor, number in rpps.items():
            self._professional(evidence, actor, number)
        with self.engine.connect() as conn:
            patients = sorted({p for _, p in pairs})
            for start in range(0, len(patients), 500):
                rows = conn.execute(
                    select(watch_flag.c.patient_id, watch_flag.c.flag).where(
                        watch_flag.c.patient_id.in_(patients[start : start + 500])
                    )
                )
                for row in rows:
                    evidence.flags[row.patient_id] = evidence.flags.get(
                        row.patient_id, frozenset()
                    ) | {str(row.flag)}
        return evidence

    # -- the policy's care relationships ------------------------------------------------------

    def _rpps(self, actors: set[str]) -> dict[str, str]:
        a = access_account.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(a.account_id, a.rpps).where(a.account_id.in_(sorted(actors)))
            ).all()
        found = {str(r.account_id): str(r.rpps) for r in rows if r.rpps}
        # a professional signed in through OpenID Connect may be known by RPPS alone
        found.update({actor: actor for actor in actors if actor.isdigit() and actor not in found})
        return found

    def _policy_care(
        self, evidence: Evidence, pairs: set[tuple[str, str]], rpps: dict[str, str]
    ) -> set[tuple[str, str]]:
        c = access_care.c
        explained: set[tuple[str, str]] = set()
        with self.engine.connect() as conn:
            for actor, patient_id in sorted(pairs):
                number = rpps.get(actor)
                if number is None:
                    continue
                row = conn.execute(
                    select(c.source, c.medecin_traitant, c.created_at).where(
                        c.patient_id == patient_id, c.rpps == number
                    )
                ).first()
                if row is None:
                    continue
                if row.medecin_traitant:
                    window = Window("medecin-traitant")
                elif row.source == "declared":
                    window = Window("care-team", _instant(str(row.created_at)))
                else:
                    continue  # an encounter's relationship: its dates are in the record
                evidence.care.setdefault((actor, patient_id), []).append(window)
                explained.add((actor, patient_id))
        return explained

    # -- the record: encounters, appointments, care teams --------------------------------------

    def _search(self, res_type: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The first page of a strict search (an unknown parameter must not widen it to every
        resource of the type); nothing when it is refused."""
        try:
            bundle = self.fhir.search(
                self.base, res_type, [*params, ("_count", PAGE)], strict=True, ctx=self.ctx
            )
        except FhirError:
            return []
        return [e["resource"] for e in bundle.get("entry", []) if "resource" in e]

    def _record_care(
        self, evidence: Evidence, patient_id: str, by_rpps: dict[str, list[str]], days: set[date]
    ) -> None:
        found: list[tuple[str, list[str], datetime | None, datetime | None, str | None]] = []
        for enc in self._search("Encounter", [("patient", patient_id)]):
            refs = [p.get("individual", {}).get("reference") for p in enc.get("participant", [])]
            start, end = _period(enc.get("period"))
            provider = (enc.get("serviceProvider") or {}).get("reference")
            found.append(("encounter", _refs(refs), start, end, provider))
        for app in self._search("Appointment", [("patient", patient_id)]):
            refs = [p.get("actor", {}).get("reference") for p in app.get("participant", [])]
            start, end = _instant(app.get("start")), _instant(app.get("end") or app.get("start"))
            found.append(("appointment", _refs(refs), start, end, None))
        for team in self._search("CareTeam", [("patient", patient_id)]):
            refs = [p.get("member", {}).get("reference") for p in team.get("participant", [])]
            start, end = _period(team.get("period"))
            found.append(("care-team", _refs(refs), start, end, None))
        for kind, practitioners, start, end, provider in found:
            for pract_id in practitioners:
                number = self._practitioner(pract_id)
                for actor in by_rpps.get(number or "", []):
                    evidence.care.setdefault((actor, patient_id), []).append(
                        Window(kind, start, end)
                    )
            if provider is not None:
                for day in days:
                    if Window(kind, start, end).covers(_noon(day)):
                        evidence.present.setdefault((provider, day), set()).add(patient_id)

    def _practitioner(self, pract_id: str) -> str | None:
        if pract_id not in self._practitioner_rpps:
            found = self._search("Practitioner", [("_id", pract_id)])
            self._practitioner_rpps[pract_id] = _rpps_in(found[0]) if found else None
        return self._practitioner_rpps[pract_id]

    # -- digests -----------------------------------------------------------------------------

    def _patient_digests(self, evidence: Evidence, patient_id: str) -> None:
        found = self._search("Patient", [("_id", patient_id)])
        if found:
            self._digests(evidence, f"patient:{patient_id}", found[0])

    def _professional(self, evidence: Evidence, actor: str, number: str) -> None:
        found = self._search("Practitioner", [("identifier", f"{RPPS_SYSTEM}|{number}")])
        found = found or self._search("Practitioner", [("identifier", f"{RPPS_SYSTEM}|8{number}")])
        if not found:
            return
        self._digests(evidence, f"actor:{actor}", found[0])
        roles = self._search(
            "PractitionerRole", [("practitioner", f"Practitioner/{found[0]['id']}")]
        )
        for role in roles:
            organisation = (role.get("organization") or {}).get("reference")
            if organisation:
                evidence.unit_of[actor] = str(organisation)
                break

    def _digests(self, evidence: Evidence, key: str, resource: dict[str, Any]) -> None:
        """Digests of a surname, an address and its street; the clear values go no further."""
        names = resource.get("name") or []
        official = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
        family = official.get("family")
        if family:
            evidence.surname[key] = self.blind.digest("watch-surname", normalise(str(family)))
        for address in resource.get("address") or []:
            lines = " ".join(str(x) for x in address.get("line") or [])
            town = " ".join(str(address.get(k) or "") for k in ("postalCode", "city"))
            if not lines.strip():
                continue
            words = _words(lines)
            street = " ".join(w for w in words.split() if not w[:1].isdigit())
            evidence.address[key] = self.blind.digest("watch-address", f"{words} {_words(town)}")
            evidence.street[key] = self.blind.digest("watch-street", f"{street} {_words(town)}")
            break


def _words(text: str) -> str:
    """Case, accents and punctuation set aside: "12, Rue des Lilas" is "12 rue des lilas"."""
    return " ".join("".join(c if c.isalnum() else " " for c in normalise(text)).split())


def _refs(refs: Iterable[Any]) -> list[str]:
    out = []
    for ref in refs:
        kind, _, ident = str(ref or "").partition("/")
        if kind == "Practitioner" and ident:
            out.append(ident)
    return out


def _rpps_in(practitioner: dict[str, Any]) -> str | None:
    for ident in practitioner.get("identifier") or []:
        if ident.get("system") == RPPS_SYSTEM and ident.get("value"):
            return rpps_of(str(ident["value"]))
    return None


def _instant(text: Any) -> datetime | None:
    if not text:
        return None
    value = str(text)
    try:
        if len(value) == 10:  # a date: from its start, local time
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), LOCAL_ZONE)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _period(period: Any) -> tuple[datetime | None, datetime | None]:
    period = period or {}
    start, end = _instant(period.get("start")), _instant(period.get("end"))
    if end is not None and len(str(period.get("end"))) == 10:
        end += timedelta(days=1)  # a date ends at the end of its day
    return start, end


def _noon(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), LOCAL_ZONE) + timedelta(hours=12)

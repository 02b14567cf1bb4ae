"""Reading an extract of the insured-person register: a CSV file or a FHIR Bundle of Patients.

The whole file is read and checked before anything is written: a bad row makes the file fail with
its row number, and provisioning changes nothing. Messages name the row and the field, never the
value (no names, no NIR in logs or on the terminal).

CSV (``,`` or ``;`` separated, a header line, UTF-8)::

    nir,birth_name,given_names,birth_date,sex,birth_place,used_name,parent_nir,parent2_nir,
    guardian_nir,guardian_kind,guardian_until,objection

``given_names`` are the birth first names separated by spaces; ``sex`` is M or F; ``birth_place``
the INSEE code (empty if unknown); ``guardian_kind`` is guardian (default) or curator;
``objection`` (1/yes/true) marks a person who objected in advance: nothing is created for them.

Bundle: Patient entries carry the INS identifier (NIR or NIA) and the FR Core strict traits; a
RelatedPerson entry whose ``patient`` points at a Patient entry (its fullUrl or ``Patient/<id>``)
and whose identifier is the representative's INS declares a representative: relationship code
PRN, MTH, FTH (parent), GUARD (guardian) or ``curator``; ``period.end`` ends a guardianship.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from carnet.identity.ins import (
    INS_NIA_OID,
    INS_NIR_OID,
    INS_SYSTEMS,
    Ins,
    InsStatus,
    InvalidTraits,
    Traits,
    apply_to_patient,
    normalise_name,
    traits_from_patient,
)
from carnet.identity.nir import InvalidNIR, validate_nir

KINDS = ("parent", "guardian", "curator")
PARENT_CODES = frozenset(
    {"PRN", "MTH", "FTH", "NPRN", "NMTH", "NFTH", "ADOPTP", "ADOPTM", "ADOPTF"}
)
NEWBORN_DAYS = 365
REQUIRED_COLUMNS = ("nir", "birth_name", "given_names", "birth_date", "sex")
_TRUE = frozenset({"1", "yes", "true", "oui", "y", "o"})


class RegisterError(ValueError):
    """The file cannot be provisioned; ``errors`` lists every bad row (ids and fields only)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{errors[0]}{more}; nothing was provisioned")


@dataclass(frozen=True)
class RepresentativeLink:
    """A representative named in the register by their matricule INS."""

    nir: str
    kind: str  # parent | guardian | curator
    until: date | None = None


@dataclass(frozen=True)
class InsuredPerson:
    """One checked row of the register."""

    row: int
    ins: Ins
    traits: Traits
    used_name: str | None = None
    representatives: tuple[RepresentativeLink, ...] = field(default_factory=tuple)
    objected: bool = False
    where: str = "row"  # "entry" for a Bundle

    @property
    def label(self) -> str:
        """How errors name this person: ``row 3`` (CSV) or ``entry 3`` (Bundle)."""
        return f"{self.where} {self.row}"

    def age_days(self, today: date) -> int:
        return (today - self.traits.birth_date).days

    def patient(self) -> dict[str, Any]:
        """The FR Core Patient for this person (strict traits, INS kept, status RECUP)."""
        base: dict[str, Any] = {"resourceType": "Patient", "active": True}
        if self.used_name:
            base["name"] = [{"use": "usual", "family": self.used_name}]
        # The register is an authoritative source (like INSi): RECUP until a document is checked.
        return apply_to_patient(base, self.traits, InsStatus.RECUP, self.ins, outgoing=False)


def ins_for(nir: str) -> Ins:
    """The INS of a register NIR: NIA (temporary numbers 7/8) or NIR."""
    value = validate_nir(nir)
    return Ins(INS_NIA_OID if value[0] in "78" else INS_NIR_OID, value)


def read_register(path: Path, *, today: date) -> list[InsuredPerson]:
    """Read and check a register file (CSV, or JSON Bundle); raise RegisterError on any bad row."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegisterError([f"cannot read {path.name}: {type(exc).__name__}"]) from None
    stripped = text.lstrip()
    if stripped.startswith("{"):
        people, errors = _from_bundle(stripped)
    else:
        people, errors = _from_csv(text, today)
    errors.extend(_check_people(people, today))
    if errors:
        raise RegisterError(sorted(errors, key=_row_of))
    return people


# -- CSV ------------------------------------------------------------------------------------------


def _from_csv(text: str, today: date) -> tuple[list[InsuredPerson], list[str]]:
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        return [], [f"header: missing column(s) {', '.join(missing)}"]
    reader.fieldnames = header
    people: list[InsuredPerson] = []
    errors: list[str] = []
    for number, raw in enumerate(reader, start=2):  # row 1 is the header
        row = {k: (v or "").strip() for k, v in raw.items() if k}
        if not any(row.values()):
            continue
        try:
            people.append(_csv_person(number, row, today))
        except ValueError as exc:
            errors.append(f"row {number}: {exc}")
    if not people and not errors:
        errors.append("the file holds no person")
    return people, errors


def _csv_person(number: int, row: dict[str, str], today: date) -> InsuredPerson:
    ins = _ins(row["nir"], "nir")
    traits = _traits(
        row["birth_name"],
        row["given_names"],
        row["birth_date"],
        row["sex"],
        row.get("birth_place") or None,
        today,
    )
    _check_agrees(ins, traits)
    used = row.get("used_name") or None
    if used:
        try:
            used = normalise_name(used, field="used name")
        except InvalidTraits:
            raise ValueError("used_name is not a valid name") from None
    links: list[RepresentativeLink] = []
    for column in ("parent_nir", "parent2_nir"):
        if row.get(column):
            links.append(RepresentativeLink(_ins(row[column], column).value, "parent"))
    if row.get("guardian_nir"):
        kind = (row.get("guardian_kind") or "guardian").lower()
        if kind not in ("guardian", "curator"):
            raise ValueError("guardian_kind must be guardian or curator")
        until = (
            _date(row["guardian_until"], "guardian_until") if row.get("guardian_until") else None
        )
        links.append(
            RepresentativeLink(_ins(row["guardian_nir"], "guardian_nir").value, kind, until)
        )
    objected = (row.get("objection") or "").lower() in _TRUE
    return InsuredPerson(number, ins, traits, used, tuple(links), objected)


# -- Bundle ---------------------------------------------------------------------------------------


def _from_bundle(text: str) -> tuple[list[InsuredPerson], list[str]]:
    try:
        bundle = json.loads(text)
    except ValueError:
        return [], ["the file is neither CSV nor a JSON Bundle"]
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return [], ["the JSON file is not a FHIR Bundle"]
    entries = bundle.get("entry") or []
    people: list[InsuredPerson] = []
    errors: list[str] = []
    refs: dict[str, int] = {}  # fullUrl or Patient/<id> -> index in people
    related: list[tuple[int, dict[str, Any]]] = []
    for number, entry in enumerate(entries, start=1):
        res = entry.get("resource") if isinstance(entry, dict) else None
        kind = res.get("resourceType") if isinstance(res, dict) else None
        if kind == "RelatedPerson":
            related.append((number, res))  # type: ignore[arg-type]
            continue
        if kind != "Patient":
            errors.append(f"entry {number}: expected a Patient or RelatedPerson, got {kind}")
            continue
        try:
            person = _bundle_person(number, res)  # type: ignore[arg-type]
        except ValueError as exc:
            errors.append(f"entry {number}: {exc}")
            continue
        for ref in (entry.get("fullUrl"), f"Patient/{res.get('id')}" if res.get("id") else None):  # type: ignore[union-attr]
            if ref:
                refs[ref] = len(people)
        people.append(person)
    links: dict[int, list[RepresentativeLink]] = {}
    for number, res in related:
        try:
            target, link = _related_link(res, refs)
        except ValueError as exc:
            errors.append(f"entry {number}: {exc}")
            continue
        links.setdefault(target, []).append(link)
    for index, found in links.items():
        person = people[index]
        people[index] = replace(person, representatives=tuple(found))
    if not people and not errors:
        errors.append("the Bundle holds no Patient")
    return people, errors


def _bundle_person(number: int, patient: dict[str, Any]) -> InsuredPerson:
    ins: Ins | None = None
    for identifier in patient.get("identifier") or []:
        if identifier.get("system") in INS_SYSTEMS:
            ins = _ins(str(identifier.get("value") or ""), "INS identifier")
            ins = Ins(str(identifier["system"]), ins.value)
    if ins is None:
        raise ValueError("the Patient has no INS identifier (NIR or NIA)")
    try:
        traits = traits_from_patient(patient)
    except InvalidTraits as exc:
        raise ValueError(_trait_problem(str(exc))) from None
    _check_agrees(ins, traits)
    used = next(
        (
            str(n["family"])
            for n in patient.get("name") or []
            if n.get("use") == "usual" and n.get("family")
        ),
        None,
    )
    return InsuredPerson(number, ins, traits, used, where="entry")


def _related_link(res: dict[str, Any], refs: dict[str, int]) -> tuple[int, RepresentativeLink]:
    target = refs.get(str((res.get("patient") or {}).get("reference") or ""))
    if target is None:
        raise ValueError("RelatedPerson.patient does not point at a Patient of the Bundle")
    nir = next(
        (
            str(i.get("value") or "")
            for i in res.get("identifier") or []
            if i.get("system") in INS_SYSTEMS
        ),
        None,
    )
    if nir is None:
        raise ValueError("the RelatedPerson has no INS identifier")
    codes = {
        str(c.get("code"))
        for concept in res.get("relationship") or []
        for c in concept.get("coding") or []
    }
    if codes & PARENT_CODES:
        kind = "parent"
    elif "GUARD" in codes:
        kind = "guardian"
    elif "curator" in codes:
        kind = "curator"
    else:
        raise ValueError("RelatedPerson.relationship is not parent, GUARD or curator")
    end = (res.get("period") or {}).get("end")
    until = _date(str(end)[:10], "period.end") if end and kind != "parent" else None
    return target, RepresentativeLink(_ins(nir, "RelatedPerson INS").value, kind, until)


# -- checks ---------------------------------------------------------------------------------------


def _ins(value: str, column: str) -> Ins:
    try:
        return ins_for(value)
    except InvalidNIR as exc:
        raise ValueError(f"invalid NIR in {column}: {exc}") from None


def _date(value: str, column: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{column} is not a YYYY-MM-DD date") from None


def _traits(
    birth_name: str, given: str, birth_date: str, sex: str, place: str | None, today: date
) -> Traits:
    try:
        return Traits.create(birth_name, given, birth_date, sex.upper(), place, today=today)
    except InvalidTraits as exc:
        raise ValueError(_trait_problem(str(exc))) from None


_TRAIT_RULES = (
    ("birth name", "birth_name is not valid (letters, space, hyphen, apostrophe)"),
    ("first", "given_names are not valid (letters, space, hyphen, apostrophe)"),
    ("birth first names", "given_names are empty"),
    ("birth date", "birth_date is not valid (YYYY-MM-DD, not in the future, not before 1850)"),
    ("sex", "sex must be M or F"),
    ("gender", "gender must be male or female"),
    ("birth place", "birth_place is not an INSEE code"),
)


def _trait_problem(message: str) -> str:
    """The rule that failed, without the value (InvalidTraits messages may quote a name)."""
    for prefix, problem in _TRAIT_RULES:
        if message.startswith(prefix):
            return problem
    return message.split("'", 1)[0].strip()


def _row_of(error: str) -> int:
    """The row (or entry) number an error starts with; 0 for file-wide errors."""
    words = error.split(" ", 2)
    if len(words) > 1 and words[0] in ("row", "entry") and words[1].rstrip(":").isdigit():
        return int(words[1].rstrip(":"))
    return 0


def _check_agrees(ins: Ins, traits: Traits) -> None:
    if not ins.agrees_with(traits):
        raise ValueError("the NIR does not agree with the sex or birth date")


def _check_people(people: list[InsuredPerson], today: date) -> list[str]:
    """File-wide rules: one row per NIR; a newborn has a parent; no one represents themselves."""
    errors: list[str] = []
    seen: dict[str, str] = {}
    for person in people:
        if person.ins.value in seen:
            errors.append(f"{person.label}: same NIR as {seen[person.ins.value]}")
        seen.setdefault(person.ins.value, person.label)
        if person.age_days(today) < NEWBORN_DAYS and not any(
            link.kind == "parent" for link in person.representatives
        ):
            errors.append(f"{person.label}: a newborn needs a parent")
        if any(link.nir == person.ins.value for link in person.representatives):
            errors.append(f"{person.label}: a person cannot represent themselves")
    return errors

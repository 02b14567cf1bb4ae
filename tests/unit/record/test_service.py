"""RecordService on SQLite and PostgreSQL: provisioning, objection window, opening, closure and
crypto-shredding, notifications and the audit trail (the Representatives service:
test_representatives.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carnet.app import Services
from carnet.fhir.errors import FhirError
from carnet.identity.ins import INS_NIR_OID
from carnet.record.notifications import FileChannel
from carnet.record.register import RegisterError, read_register
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.unit.record.helpers import (
    BABY,
    CLAIRE,
    HEADER,
    ODILE,
    PAUL,
    TEEN,
    TODAY,
    Person,
    family_bundle,
    family_csv,
    write_csv,
)

# Both backends: record queries run the store's search SQL.
pytestmark = pytest.mark.both_backends

NOW = datetime.now(UTC)
WINDOW = timedelta(days=42)


def _provision(services: Services, path: Path, now: datetime = NOW) -> Any:
    return services.record.provision(
        read_register(path, today=TODAY), now=now, ctx=AS_LOCAL_OPERATOR
    )


def _patient_count(services: Services) -> int:
    bundle = services.fhir.search(
        "http://x/fhir", "Patient", [("_summary", "count")], ctx=AS_LOCAL_OPERATOR
    )
    return int(bundle["total"])


def _actions(services: Services, patient_id: str) -> list[str]:
    page = services.audit.patient_history(patient_id, AS_LOCAL_OPERATOR, count=500, offset=0)
    return [json.loads(e.body)["action"] for e in page.events]


def test_provision_csv(services: Services, tmp_path: Path) -> None:
    report = _provision(services, family_csv(tmp_path / "register.csv"))
    assert (report.created, report.known, report.representatives) == (4, 0, 2)
    claire, baby, paul, odile = (report.patients[r] for r in (2, 3, 4, 5))
    patient = services.fhir.read("Patient", claire, ctx=AS_LOCAL_OPERATOR).body
    assert patient is not None
    assert {"system": INS_NIR_OID, "value": CLAIRE.nir}.items() <= patient["identifier"][0].items()
    assert patient["name"][0]["family"] == "LEFEBVRE"
    space = services.record.space(claire)
    assert space is not None and space.state == "pending"
    assert space.source == "register"
    deadline = datetime.fromisoformat(str(space.objection_deadline).replace("Z", "+00:00"))
    assert abs(deadline - (NOW + WINDOW)) < timedelta(seconds=1)
    assert not services.record.is_open(claire)
    assert services.record.representatives.representatives_of(baby, now=NOW) == [claire]
    assert services.record.representatives.representatives_of(odile, now=NOW) == [paul]
    assert services.record.representatives.represented_patients(paul, now=NOW) == [odile]
    assert services.record.space(baby).representatives[0]["kind"] == "parent"  # type: ignore[union-attr]
    queued = services.record.pending_notifications()
    provisioned = {
        (n.patient_id, n.recipient_patient_id) for n in queued if n.kind == "space-provisioned"
    }
    # A newborn's notice goes to the parent; a protected adult is told, and so is the guardian.
    assert provisioned == {
        (claire, claire),
        (baby, claire),
        (paul, paul),
        (odile, odile),
        (odile, paul),
    }


def test_provision_bundle(services: Services, tmp_path: Path) -> None:
    report = _provision(services, family_bundle(tmp_path / "register.json"))
    assert (report.created, report.representatives) == (3, 1)
    claire, baby = report.patients[1], report.patients[2]
    assert services.record.representatives.representatives_of(baby, now=NOW) == [claire]
    assert services.record.representatives.represented_patients(claire, now=NOW) == [baby]


def test_reprovisioning_is_idempotent(services: Services, tmp_path: Path) -> None:
    path = family_csv(tmp_path / "register.csv")
    first = _provision(services, path)
    queued = len(services.record.pending_notifications())
    again = _provision(services, path, NOW + timedelta(hours=1))
    assert (again.created, again.known, again.representatives, again.notifications) == (0, 4, 0, 0)
    assert again.patients == first.patients
    assert _patient_count(services) == 4
    assert len(services.record.pending_notifications()) == queued
    # A Patient already known by its INS (written by a professional) gets a space, not a twin.
    other = tmp_path / "teen.csv"
    existing = services.fhir.create("Patient", TEEN.patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    assert _provision(services, write_csv(other, [TEEN.row()])).patients[2] == existing
    assert _patient_count(services) == 5


def test_objection_inside_the_window_refuses_the_space(services: Services, tmp_path: Path) -> None:
    report = _provision(services, family_csv(tmp_path / "register.csv"))
    claire = report.patients[2]
    assert (
        services.record.object(claire, now=NOW + timedelta(days=10), ctx=AS_LOCAL_OPERATOR)
        == "refused"
    )
    swept = services.record.sweep(now=NOW + WINDOW + timedelta(days=1), ctx=AS_LOCAL_OPERATOR)
    assert claire not in swept.opened
    assert len(swept.opened) == 3
    assert not services.record.is_open(claire)
    space = services.record.space(claire)
    assert space is not None and (space.state, space.reason) == ("refused", "objection")
    with pytest.raises(FhirError) as info:
        services.record.object(claire, ctx=AS_LOCAL_OPERATOR)
    assert info.value.status == 409
    # The register sends the person again: the objection holds.
    again = _provision(services, tmp_path / "register.csv", NOW + timedelta(days=60))
    assert (again.created, again.declined) == (0, 1)
    # People who objected in advance are not created at all.
    before = _patient_count(services)
    late = _provision(services, write_csv(tmp_path / "late.csv", [TEEN.row(objection=True)]))
    assert (late.created, late.objected) == (0, 1)
    assert _patient_count(services) == before


def test_sweep_opens_after_the_window(services: Services, tmp_path: Path) -> None:
    report = _provision(services, write_csv(tmp_path / "r.csv", [PAUL.row()]))
    paul = report.patients[2]
    assert (
        services.record.sweep(now=NOW + WINDOW - timedelta(minutes=1), ctx=AS_LOCAL_OPERATOR).opened
        == []
    )
    assert not services.record.is_open(paul)
    assert services.record.sweep(now=NOW + WINDOW, ctx=AS_LOCAL_OPERATOR).opened == [paul]
    assert services.record.is_open(paul)
    assert (
        services.record.sweep(now=NOW + WINDOW + timedelta(days=1), ctx=AS_LOCAL_OPERATOR).opened
        == []
    )
    kinds = [n.kind for n in services.record.pending_notifications()]
    assert kinds == ["space-provisioned", "space-opened"]
    # An objection after the window closes the space.
    assert (
        services.record.object(paul, now=NOW + WINDOW + timedelta(days=2), ctx=AS_LOCAL_OPERATOR)
        == "closed"
    )
    assert not services.record.is_open(paul)


def test_closure_then_shredding_after_retention(services: Services, tmp_path: Path) -> None:
    report = _provision(services, write_csv(tmp_path / "r.csv", [CLAIRE.row(), PAUL.row()]))
    claire, paul = report.patients[2], report.patients[3]
    services.record.sweep(now=NOW + WINDOW, ctx=AS_LOCAL_OPERATOR)
    obs = services.fhir.create(
        "Observation",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
            "subject": {"reference": f"Patient/{claire}"},
            "valueQuantity": {"value": 165.0, "unit": "cm"},
        },
        ctx=AS_LOCAL_OPERATOR,
    ).stored.res_id
    closed_at = NOW + WINDOW + timedelta(days=1)
    assert services.record.close(claire, now=closed_at, ctx=AS_LOCAL_OPERATOR) == "closed"
    space = services.record.space(claire)
    assert space is not None and space.retention_until is not None
    assert space.retention_until.startswith(str(closed_at.year + 10))
    assert (
        services.record.sweep(
            now=closed_at + timedelta(days=9 * 365), ctx=AS_LOCAL_OPERATOR
        ).shredded
        == []
    )
    assert (
        services.fhir.read("Observation", obs, ctx=AS_LOCAL_OPERATOR).body is not None
    )  # kept during retention
    swept = services.record.sweep(now=closed_at + timedelta(days=3653), ctx=AS_LOCAL_OPERATOR)
    assert swept.shredded == [claire]
    for res_type, res_id in (("Patient", claire), ("Observation", obs)):
        with pytest.raises(FhirError) as info:
            services.fhir.read(res_type, res_id, ctx=AS_LOCAL_OPERATOR)
        assert info.value.status == 410
        assert "erased" in str(info.value)
    assert services.record.space(claire).state == "shredded"  # type: ignore[union-attr]
    assert (
        services.fhir.read("Patient", paul, ctx=AS_LOCAL_OPERATOR).body is not None
    )  # others untouched
    # A shredded person sent again by the register is not provisioned again.
    again = _provision(services, tmp_path / "r.csv", closed_at + timedelta(days=3660))
    assert (again.created, again.declined, again.known) == (0, 1, 1)


def test_an_invalid_file_changes_nothing(services: Services, tmp_path: Path) -> None:
    bad = CLAIRE.nir[:-2] + f"{(int(CLAIRE.nir[-2:]) % 97) + 1:02d}"
    rows = [PAUL.row(), CLAIRE.row().replace(CLAIRE.nir, bad)]
    with pytest.raises(RegisterError) as info:
        read_register(write_csv(tmp_path / "bad.csv", rows), today=TODAY)
    assert str(info.value).startswith("row 3: invalid NIR in nir: check key")
    assert "LEFEBVRE" not in str(info.value).upper() and bad not in str(info.value)
    with pytest.raises(RegisterError, match="row 2: birth_name is not valid"):
        read_register(
            write_csv(tmp_path / "n.csv", [PAUL.row().replace("Lefebvre", "L3")]), today=TODAY
        )
    # A representative neither in the file nor known: the whole run rolls back.
    orphan = write_csv(tmp_path / "orphan.csv", [PAUL.row(), BABY.row(CLAIRE)])
    with pytest.raises(FhirError) as failed:
        _provision(services, orphan)
    assert failed.value.status == 400 and "row 3" in str(failed.value)
    assert _patient_count(services) == 0
    assert services.record.pending_notifications() == []


def test_every_step_is_audited(services: Services, tmp_path: Path) -> None:
    report = _provision(services, write_csv(tmp_path / "r.csv", [CLAIRE.row(), PAUL.row()]))
    claire, paul = report.patients[2], report.patients[3]
    services.record.object(paul, now=NOW + timedelta(days=1), ctx=AS_LOCAL_OPERATOR)
    channel = FileChannel(tmp_path / "outbox.ndjson")
    services.record.sweep(channel, now=NOW + WINDOW, ctx=AS_LOCAL_OPERATOR)
    services.record.close(claire, now=NOW + WINDOW + timedelta(days=1), ctx=AS_LOCAL_OPERATOR)
    services.record.sweep(channel, now=NOW + timedelta(days=4000), ctx=AS_LOCAL_OPERATOR)
    actions = _actions(services, claire)
    for step in (
        "record-provision",
        "record-notify",
        "record-open",
        "record-close",
        "record-shred",
    ):
        assert step in actions, step
    assert "record-object" in _actions(services, paul)


def test_notifications_hold_ids_and_templates_only(services: Services, tmp_path: Path) -> None:
    _provision(services, family_csv(tmp_path / "register.csv"))
    outbox = tmp_path / "outbox" / "notifications.ndjson"
    delivered = services.record.deliver(FileChannel(outbox), now=NOW, ctx=AS_LOCAL_OPERATOR)
    assert delivered == 7
    assert services.record.pending_notifications() == []
    assert services.record.deliver(FileChannel(outbox), now=NOW, ctx=AS_LOCAL_OPERATOR) == 0
    text = outbox.read_text(encoding="utf-8")
    for person in (CLAIRE, BABY, PAUL, ODILE):
        assert person.nir not in text
        for word in (person.birth_name, *person.given.split()):
            assert word.upper() not in text.upper()
        assert person.birth.isoformat() not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert {tuple(sorted(line)) for line in lines} == {
        ("created_at", "deadline", "id", "kind", "patient_id", "recipient_patient_id")
    }
    assert outbox.stat().st_mode & 0o777 == 0o600


def test_an_objection_reported_by_the_register(services: Services, tmp_path: Path) -> None:
    report = _provision(services, write_csv(tmp_path / "r.csv", [CLAIRE.row(), PAUL.row()]))
    claire, paul = report.patients[2], report.patients[3]
    services.record.sweep(now=NOW + WINDOW, ctx=AS_LOCAL_OPERATOR)  # both open
    objections = write_csv(tmp_path / "o.csv", [CLAIRE.row(objection=True), PAUL.row()])
    again = _provision(services, objections, NOW + WINDOW + timedelta(days=1))
    assert (again.objected, again.known, again.created) == (1, 1, 0)
    space = services.record.space(claire)
    assert space is not None and (space.state, space.reason) == ("closed", "objection")
    assert services.record.is_open(paul)
    assert "record-object" in _actions(services, claire)


def test_reopen_before_the_retention_ends(services: Services, tmp_path: Path) -> None:
    report = _provision(services, write_csv(tmp_path / "r.csv", [CLAIRE.row(), PAUL.row()]))
    claire, paul = report.patients[2], report.patients[3]
    services.record.object(claire, now=NOW + timedelta(days=1), ctx=AS_LOCAL_OPERATOR)
    assert (
        services.record.reopen(claire, now=NOW + timedelta(days=2), ctx=AS_LOCAL_OPERATOR) == "open"
    )
    assert services.record.is_open(claire)
    space = services.record.space(claire)
    assert space is not None and space.retention_until is None
    assert (
        services.record.sweep(now=NOW + timedelta(days=4000), ctx=AS_LOCAL_OPERATOR).shredded == []
    )
    assert "record-reopen" in _actions(services, claire)
    with pytest.raises(FhirError) as info:
        services.record.reopen(claire, ctx=AS_LOCAL_OPERATOR)
    assert info.value.status == 409
    services.record.close(paul, reason="death", now=NOW + timedelta(days=3), ctx=AS_LOCAL_OPERATOR)
    with pytest.raises(FhirError):
        services.record.reopen(paul, ctx=AS_LOCAL_OPERATOR)
    # A newborn whose parent is already known (an earlier file) is linked to them.
    later = _provision(services, write_csv(tmp_path / "b.csv", [BABY.row(CLAIRE)]))
    assert services.record.representatives.representatives_of(later.patients[2], now=NOW) == [
        claire
    ]


def test_open_space_for_a_known_patient(services: Services, tmp_path: Path) -> None:
    walk_in = services.fhir.create("Patient", TEEN.patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    assert services.record.open_space(walk_in, ctx=AS_LOCAL_OPERATOR) is True
    assert services.record.is_open(walk_in)
    assert services.record.open_space(walk_in, ctx=AS_LOCAL_OPERATOR) is False
    space = services.record.space(walk_in)
    assert space is not None and space.source == "request"
    # The register later sends the same person: the space is known, not duplicated.
    again = _provision(services, write_csv(tmp_path / "r.csv", [TEEN.row(), PAUL.row()]))
    assert (again.created, again.known, again.patients[2]) == (1, 1, walk_in)
    pending = again.patients[3]
    assert (
        services.record.open_space(pending, ctx=AS_LOCAL_OPERATOR) is True
    )  # skips the rest of the window
    services.record.close(pending, ctx=AS_LOCAL_OPERATOR)
    with pytest.raises(FhirError) as info:
        services.record.open_space(pending, ctx=AS_LOCAL_OPERATOR)
    assert info.value.status == 409
    with pytest.raises(FhirError) as missing:
        services.record.open_space("nobody", ctx=AS_LOCAL_OPERATOR)
    assert missing.value.status == 404


def test_the_register_never_gives_its_person_a_patient_that_is_someone_else(
    services: Services, tmp_path: Path
) -> None:
    # Paul's NIR typed on Odile's record at a desk: a Patient that carries his INS is not him.
    odile = ODILE.patient()
    odile["identifier"][0]["value"] = PAUL.nir
    hers = services.fhir.create("Patient", odile, ctx=AS_LOCAL_OPERATOR).stored.res_id
    with pytest.raises(FhirError) as refused:
        _provision(services, write_csv(tmp_path / "r.csv", [CLAIRE.row(), PAUL.row()]))
    assert refused.value.status == 409
    assert "row 3" in str(refused.value.outcome())
    assert services.record.space(hers) is None  # her record is not made his space
    assert _patient_count(services) == 1  # and the file provisioned nobody


def test_the_register_judges_who_is_someone_else_as_the_identity_index_does(
    services: Services, tmp_path: Path
) -> None:
    # Claire's Patient was opened at a desk under her usage (married) name, Martin; the register
    # sends her birth name, Lefebvre, and Martin as her usage name. The identity index holds
    # them for one person (a usage name on either side counts, and an update of that Patient
    # to her birth name is a correction it lets through): provisioning must not decide, on
    # strict traits alone, that her own Patient is someone else's.
    desk = Person("Martin", CLAIRE.given, CLAIRE.birth, CLAIRE.sex, order=12)
    assert desk.nir == CLAIRE.nir
    hers = services.fhir.create("Patient", desk.patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    row = f"{CLAIRE.row()};Martin"
    path = tmp_path / "r.csv"
    path.write_text(f"{HEADER};used_name\n{row}\n", encoding="utf-8")
    report = _provision(services, path)
    assert report.patients[2] == hers  # her own Patient is her space
    assert services.record.space(hers) is not None
    assert _patient_count(services) == 1


def test_the_register_never_makes_someone_else_its_newborns_parent(
    services: Services, tmp_path: Path
) -> None:
    # Paul's NIR typed on Odile's record: the register names Paul as the newborn's parent, and
    # the Patient carrying his NIR is a woman born in 1941, whom it plainly does not name.
    odile = ODILE.patient()
    odile["identifier"][0]["value"] = PAUL.nir
    hers = services.fhir.create("Patient", odile, ctx=AS_LOCAL_OPERATOR).stored.res_id
    with pytest.raises(FhirError) as refused:
        _provision(services, write_csv(tmp_path / "r.csv", [BABY.row(PAUL)]))
    assert refused.value.status == 409
    assert "row 2" in str(refused.value.outcome())
    assert services.record.representatives.represented_patients(hers) == []
    assert _patient_count(services) == 1

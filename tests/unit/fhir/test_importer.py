"""Importer: NDJSON (plain and gzipped), folders, bad lines, resumable re-runs."""

from __future__ import annotations

import gzip
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, event

from carnet.app import Services
from carnet.fhir.import_files import discover, fingerprint
from carnet.fhir.importer import MAX_REJECTIONS, Importer, ImportInterruptedError
from tests.conftest import CORPUS
from tests.support.caller import AS_LOCAL_OPERATOR

# Both backends: bulk loads take a backend-specific path (carnet/db/bulk.py).
pytestmark = pytest.mark.both_backends


def _patient(i: int) -> dict[str, object]:
    return {"resourceType": "Patient", "id": f"p{i}", "gender": "female", "birthDate": "1990-01-01"}


def _obs(i: int) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "id": f"o{i}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": f"Patient/p{i}"},
    }


XHTML = "http://www.w3.org/1999/xhtml"


def _smallest_synthea_patients(n: int) -> list[Path]:
    """The ``n`` smallest Synthea patient bundles (60-90 resources each), in name order."""
    patients = (p for p in (CORPUS / "synthea").glob("*.json.gz") if "Information" not in p.name)
    return sorted(sorted(patients, key=lambda p: (p.stat().st_size, p.name))[:n])


def _synthea_shared(kind: str) -> Path:
    """The bundle of the Organizations (``hospital``) or Practitioners every patient re-posts."""
    return next((CORPUS / "synthea").glob(f"{kind}Information*.json.gz"))


def _posted(files: list[Path], res_type: str) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for p in files
        for e in orjson.loads(gzip.decompress(p.read_bytes()))["entry"]
        if e["resource"]["resourceType"] == res_type
    ]


def _count(services: Services, res_type: str) -> int:
    total = services.fhir.search("urn:t", res_type, [("_summary", "count")], ctx=AS_LOCAL_OPERATOR)[
        "total"
    ]
    return int(total)


def test_ndjson_plain_and_gzipped_with_bad_lines(sqlite_services: Services, tmp_path: Path) -> None:
    plain = tmp_path / "Patient.ndjson"
    lines = [orjson.dumps(_patient(i)) for i in range(7)]
    lines.insert(3, b"{not json")
    lines.insert(5, orjson.dumps({"resourceType": "Patient", "gender": "robot"}))
    plain.write_bytes(b"\n".join(lines) + b"\n\n")
    zipped = tmp_path / "Observation.ndjson.gz"
    zipped.write_bytes(gzip.compress(b"\n".join(orjson.dumps(_obs(i)) for i in range(7))))

    report = Importer(sqlite_services.fhir, batch_size=3, ctx=AS_LOCAL_OPERATOR).run(
        discover([tmp_path])
    )

    assert report.files == 2
    assert report.read == 16
    assert report.stored == 14
    assert report.by_type == {"Patient": 7, "Observation": 7}
    reasons = sorted((r.source, r.status) for r in report.rejected)
    assert reasons == [("Patient.ndjson:4", 400), ("Patient.ndjson:6", 422)]
    assert _count(sqlite_services, "Patient") == 7
    assert _count(sqlite_services, "Observation") == 7


def test_rerun_changes_nothing(sqlite_services: Services, tmp_path: Path) -> None:
    path = tmp_path / "p.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(_patient(i)) for i in range(5)))
    Importer(sqlite_services.fhir, ctx=AS_LOCAL_OPERATOR).run([path])
    Importer(sqlite_services.fhir, ctx=AS_LOCAL_OPERATOR).run([path])
    assert _count(sqlite_services, "Patient") == 5
    assert (
        sqlite_services.fhir.read("Patient", "p0", ctx=AS_LOCAL_OPERATOR).version == 1
    )  # an unchanged update is a no-op
    history = sqlite_services.fhir.history("urn:t", "Patient", None, [], ctx=AS_LOCAL_OPERATOR)
    assert history["total"] == 5


def test_discover_refuses_unknown_files(tmp_path: Path) -> None:
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    with pytest.raises(ValueError, match=r"not a \.json"):
        discover([odd])
    with pytest.raises(FileNotFoundError):
        discover([tmp_path / "missing"])


def test_reply_bundles_are_rejected_with_reason(sqlite_services: Services, tmp_path: Path) -> None:
    path = tmp_path / "reply.json"
    path.write_bytes(
        orjson.dumps(
            {
                "resourceType": "Bundle",
                "type": "batch-response",
                "entry": [{"response": {"status": "200"}}],
            }
        )
    )
    report = Importer(sqlite_services.fhir, ctx=AS_LOCAL_OPERATOR).run([path])
    assert report.stored == 0
    assert [r.status for r in report.rejected] == [422]
    assert "server's replies" in report.rejected[0].reason


def _count_on(services: Services, res_type: str) -> int:
    return int(
        services.fhir.search("urn:t", res_type, [("_summary", "count")], ctx=AS_LOCAL_OPERATOR)[
            "total"
        ]
    )


def test_crash_then_resume_stores_each_line_once(services: Services, tmp_path: Path) -> None:
    """Lines without ids are created (POST): a replayed batch would duplicate them."""
    patients = tmp_path / "Patient.ndjson"  # an item joins an existing record
    patients.write_bytes(b"\n".join(orjson.dumps(_patient(i)) for i in range(23)))
    Importer(services.fhir, ctx=AS_LOCAL_OPERATOR).run([patients])
    path = tmp_path / "obs.ndjson.gz"
    lines = [orjson.dumps({k: v for k, v in _obs(i).items() if k != "id"}) for i in range(23)]
    path.write_bytes(gzip.compress(b"\n".join(lines)))

    with pytest.raises(ImportInterruptedError):
        Importer(services.fhir, batch_size=5, fail_after_batches=2, ctx=AS_LOCAL_OPERATOR).run(
            [path]
        )
    assert _count_on(services, "Observation") == 10  # two committed batches

    report = Importer(services.fhir, batch_size=5, ctx=AS_LOCAL_OPERATOR).run([path])
    assert report.skipped == 10
    assert report.read == 13
    assert report.stored == 13
    assert _count_on(services, "Observation") == 23

    third = Importer(services.fhir, batch_size=5, ctx=AS_LOCAL_OPERATOR).run(
        [path]
    )  # complete: skipped whole
    assert third.read == 0
    assert _count_on(services, "Observation") == 23
    fresh = Importer(services.fhir, batch_size=5, resume=False, ctx=AS_LOCAL_OPERATOR).run([path])
    assert fresh.stored == 23  # resume=False re-reads (and here creates again)
    assert _count_on(services, "Observation") == 46


def test_crash_between_bundle_files_resumes_with_the_next(services: Services) -> None:
    files = _smallest_synthea_patients(3)
    with pytest.raises(ImportInterruptedError):
        Importer(services.fhir, fail_after_batches=2, ctx=AS_LOCAL_OPERATOR).run(files)
    assert _count_on(services, "Patient") == 2
    report = Importer(services.fhir, ctx=AS_LOCAL_OPERATOR).run(files)
    assert report.skipped == 2
    assert _count_on(services, "Patient") == 3


def test_shared_organizations_and_practitioners_are_deduplicated(
    sqlite_services: Services,
) -> None:
    # Patient bundles re-post Organizations and Practitioners of the shared bundles (and of each
    # other): each is stored once, whichever file posted it first.
    files = [*_smallest_synthea_patients(4), _synthea_shared("hospital")]
    files.append(_synthea_shared("practitioner"))
    Importer(sqlite_services.fhir, ctx=AS_LOCAL_OPERATOR).run(files)
    for res_type in ("Organization", "Practitioner"):
        posted = _posted(files, res_type)
        distinct = {r["identifier"][0]["value"] for r in posted}
        assert _count_on(sqlite_services, res_type) == len(distinct) < len(posted), res_type


def test_dedupe_can_be_turned_off(sqlite_services: Services) -> None:
    files = [*_smallest_synthea_patients(1), _synthea_shared("hospital")]
    Importer(sqlite_services.fhir, dedupe_shared=False, ctx=AS_LOCAL_OPERATOR).run(files)
    posted = _posted(files, "Organization")
    assert len({r["identifier"][0]["value"] for r in posted}) < len(posted)  # dedupe would merge
    assert _count_on(sqlite_services, "Organization") == len(posted)


@pytest.mark.slow  # large generated files
def test_memory_does_not_grow_with_file_size(sqlite_services: Services, tmp_path: Path) -> None:
    # Few lines, each large (a 16 KB narrative): a file five times as long must not need more
    # memory. Holding every line read would add ~3 MB to a ~1.3 MB peak here (measured ratio
    # 3.4); with 2,000 small lines it added less than half the peak and went unnoticed.
    narrative = {"status": "generated", "div": f'<div xmlns="{XHTML}">{"x" * 16_000}</div>'}

    def peak(n: int) -> int:
        path = tmp_path / f"p{n}.ndjson"
        path.write_bytes(
            b"\n".join(
                orjson.dumps({**_patient(i), "id": f"m{n}-{i}", "text": narrative})
                for i in range(n)
            )
        )
        tracemalloc.start()
        Importer(sqlite_services.fhir, batch_size=20, ctx=AS_LOCAL_OPERATOR).run([path])
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(40), peak(200)  # 2 and 10 batches
    assert large < small * 1.5, (small, large)


def test_rejections_are_capped_but_counted(sqlite_services: Services, tmp_path: Path) -> None:
    path = tmp_path / "bad.ndjson"
    path.write_bytes(b"\n".join(b"{oops" for _ in range(MAX_REJECTIONS + 10)))
    report = Importer(sqlite_services.fhir, ctx=AS_LOCAL_OPERATOR).run([path])
    assert report.rejected_total == MAX_REJECTIONS + 10
    assert len(report.rejected) == MAX_REJECTIONS


def _transaction_of(kind: str, resources: list[dict[str, object]]) -> bytes:
    entries = [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": r,
            "request": {"method": "POST", "url": r["resourceType"]},
        }
        for r in resources
    ]
    return orjson.dumps({"resourceType": "Bundle", "type": kind, "entry": entries})


def test_what_a_file_stores_commits_with_its_import_record(
    services: Services, tmp_path: Path
) -> None:
    """At every commit, what a file stored and its progress row agree.

    A process killed between two commits then leaves both or neither, so a re-run never stores a
    Bundle, a batch entry or an NDJSON line twice (ids are minted: a replay would duplicate).
    """
    transaction = tmp_path / "transaction.json"
    transaction.write_bytes(
        _transaction_of("transaction", [{"resourceType": "Patient", "gender": "female"}] * 2)
    )
    batch = tmp_path / "batch.json"
    batch.write_bytes(_transaction_of("batch", [{"resourceType": "Practitioner"}] * 3))
    ndjson = tmp_path / "obs.ndjson"
    ndjson.write_bytes(  # in no record: only the file's own Patients are counted
        b"\n".join(
            orjson.dumps({k: v for k, v in _obs(i).items() if k not in ("id", "subject")})
            for i in range(7)
        )
    )
    keys = {path.name: fingerprint(path) for path in (transaction, batch, ndjson)}
    seen: list[dict[str, tuple[int, int, bool]]] = []

    def observe(conn: Connection) -> None:
        cursor = conn.connection.cursor()
        state: dict[str, tuple[int, int, bool]] = {}
        for name, res_type in (
            ("transaction.json", "Patient"),
            ("batch.json", "Practitioner"),
            ("obs.ndjson", "Observation"),
        ):
            cursor.execute(f"SELECT count(*) FROM fhir_resource WHERE res_type = '{res_type}'")
            stored = int(cursor.fetchone()[0])
            cursor.execute(
                "SELECT lines_done, complete FROM import_progress "
                f"WHERE source_key = '{keys[name]}'"
            )
            row = cursor.fetchone()
            state[name] = (stored, int(row[0]) if row else 0, bool(row[1]) if row else False)
        cursor.close()
        seen.append(state)

    event.listen(services.engine, "commit", observe)
    try:
        Importer(services.fhir, batch_size=3, ctx=AS_LOCAL_OPERATOR).run(
            [transaction, batch, ndjson]
        )
    finally:
        event.remove(services.engine, "commit", observe)

    for state in seen:
        stored, _, complete = state["transaction.json"]
        assert stored == (2 if complete else 0), state
        stored, entries_done, complete = state["batch.json"]
        assert stored == (3 if complete else entries_done), state
        stored, lines_done, _ = state["obs.ndjson"]
        assert stored == lines_done, state
    assert seen[-1] == {
        "transaction.json": (2, 1, True),
        "batch.json": (3, 3, True),
        "obs.ndjson": (7, 7, True),
    }


def test_import_report_names_path_not_value(sqlite_services: Services, tmp_path: Path) -> None:
    """A rejection says where the bad value is (``Patient.birthDate``), never the value itself."""
    secret_date, secret_gender, secret_name = "1990-02-30", "Dupont-secret", "Zoe Secretname"
    patient = {"resourceType": "Patient", "name": [{"text": secret_name}]}
    ndjson = tmp_path / "Patient.ndjson"
    ndjson.write_bytes(
        orjson.dumps({**patient, "id": "a", "birthDate": secret_date})
        + b"\n"
        + orjson.dumps({**patient, "id": "b", "gender": secret_gender})
    )
    transaction = tmp_path / "transaction.json"
    transaction.write_bytes(
        _transaction_of("transaction", [{**patient, "birthDate": "19" + secret_date + "x"}])
    )
    batch = tmp_path / "batch.json"
    batch.write_bytes(_transaction_of("batch", [{**patient, "gender": secret_gender}]))

    report = Importer(sqlite_services.fhir, ctx=AS_LOCAL_OPERATOR).run([ndjson, transaction, batch])

    reasons = {r.source: r.reason for r in report.rejected}
    assert reasons == {
        "Patient.ndjson:1": "value: Patient.birthDate",
        "Patient.ndjson:2": "structure: Patient.gender",
        "transaction.json (transaction)": "structure: Bundle.entry[0].resource.birthDate",
        "batch.json entry 0": "structure: Bundle.entry[0].resource.gender",
    }
    printed = repr(report)
    for secret in (secret_date, secret_gender, secret_name, "Secret"):
        assert secret not in printed


def test_an_import_never_moves_an_item_into_another_patients_record(
    sqlite_services: Services, tmp_path: Path
) -> None:
    """Two sources using the same resource ids: the second one's ``Observation/o1`` (its own
    patient's) must not take the first one's ``o1`` out of her record into his. Observation.ndjson
    is read before Patient.ndjson, so the Patient's refusal cannot protect it: the line itself is
    set aside with its reason, and the stored item stays as it was. The same holds for a PUT
    entry of a transaction Bundle file."""
    fhir = sqlite_services.fhir
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "Patient.ndjson").write_bytes(orjson.dumps(_patient(1)))
    (first / "Observation.ndjson").write_bytes(orjson.dumps(_obs(1)))
    Importer(fhir, ctx=AS_LOCAL_OPERATOR).run(discover([first]))

    his = {**_patient(2), "gender": "male"}
    theirs = {**_obs(1), "subject": {"reference": "Patient/p2"}, "status": "amended"}
    (second / "Patient.ndjson").write_bytes(orjson.dumps(his))
    (second / "Observation.ndjson").write_bytes(
        orjson.dumps(theirs) + b"\n" + orjson.dumps(_obs(2))
    )
    report = Importer(fhir, ctx=AS_LOCAL_OPERATOR).run(discover([second]))

    assert [(r.source, r.status, r.reason) for r in report.rejected] == [
        ("Observation.ndjson:1", 409, "conflict: Observation.subject")
    ]
    assert report.by_type == {"Observation": 1, "Patient": 1}  # the others are stored
    kept = fhir.read("Observation", "o1", ctx=AS_LOCAL_OPERATOR)
    assert kept.patient_id == "p1" and kept.version == 1 and kept.body["status"] == "final"

    bundle = second / "transaction.json"
    bundle.write_bytes(
        orjson.dumps(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {"resource": theirs, "request": {"method": "PUT", "url": "Observation/o1"}}
                ],
            }
        )
    )
    report = Importer(fhir, ctx=AS_LOCAL_OPERATOR).run([bundle])
    assert [(r.status, r.reason) for r in report.rejected] == [
        (409, "conflict: Bundle.entry[0].resource.subject")
    ]
    kept = fhir.read("Observation", "o1", ctx=AS_LOCAL_OPERATOR)
    assert kept.patient_id == "p1" and kept.version == 1


def test_an_import_never_gives_a_patient_the_items_of_the_patient_it_refused(
    sqlite_services: Services, tmp_path: Path
) -> None:
    """Two sources both calling their patient ``p1``: the second one's Patient line is refused
    (another person under that id), so its items, which name the same ``Patient/p1``, are that
    other person's too: stored, they would join the first one's record (her ``o1`` replaced by
    his). Each is set aside with its reason; her record stays as it was."""
    fhir = sqlite_services.fhir
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    her = {
        **_patient(1),
        "name": [{"use": "official", "family": "Petit", "given": ["Anne"]}],
        "birthDate": "1961-04-02",
    }
    (first / "Patient.ndjson").write_bytes(orjson.dumps(her))
    (first / "Observation.ndjson").write_bytes(orjson.dumps(_obs(1)))
    assert Importer(fhir, ctx=AS_LOCAL_OPERATOR).run(discover([first])).rejected == []

    him = {
        **her,
        "name": [{"use": "official", "family": "Durand", "given": ["Luc"]}],
        "gender": "male",
        "birthDate": "1950-11-30",
    }
    (second / "Patient.ndjson").write_bytes(orjson.dumps(him))
    (second / "Observation.ndjson").write_bytes(
        orjson.dumps({**_obs(1), "status": "amended"})
        + b"\n"
        + orjson.dumps({**_obs(9), "subject": {"reference": "Patient/p1"}})
    )
    report = Importer(fhir, ctx=AS_LOCAL_OPERATOR).run(discover([second]))

    assert [(r.source, r.status) for r in report.rejected] == [
        ("Patient.ndjson:1", 409),
        ("Observation.ndjson:1", 409),
        ("Observation.ndjson:2", 409),
    ]
    assert report.rejected[1].reason == "conflict: Observation.subject"
    kept = fhir.read("Observation", "o1", ctx=AS_LOCAL_OPERATOR)
    assert kept.version == 1 and kept.body["status"] == "final"
    record = fhir.search("urn:t", "Observation", [("patient", "p1")], ctx=AS_LOCAL_OPERATOR)
    assert [e["resource"]["id"] for e in record["entry"]] == ["o1"]

"""Search in one patient's record (carnet/record/search.py): French words and stems, accents,
documents' text, the policy applied before ranking (a masked document is neither found nor quoted),
refusals that say nothing of the record, and every query audited without its words."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from carnet.app import Services, build_services
from carnet.caller import Kind, Principal, RequestContext
from carnet.demo.pdf import make_pdf
from carnet.fhir.errors import FhirError
from carnet.record.search import RecordSearch, snippet
from carnet.record.search_text import terms
from tests.conftest import make_settings
from tests.support.audit_log import logged_events
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.migrated_store import SqliteTemplate

GP, NURSE, BLOCKED, STRANGER = "10000000011", "10000000029", "10000000037", "10000000045"


def _pro(name: str, rpps: str) -> RequestContext:
    return RequestContext(
        Principal(Kind.PROFESSIONAL, f"pro-{name}", rpps=rpps, profession="physician"), name
    )


AS_GP, AS_NURSE = _pro("gp", GP), _pro("nurse", NURSE)
AS_BLOCKED, AS_STRANGER = _pro("blocked", BLOCKED), _pro("stranger", STRANGER)


@dataclass
class Record:
    services: Services
    search: RecordSearch
    patient: str
    other: str
    fracture: str
    hepatitis: str
    glucose: str
    data_dir: Path


def _document(patient: str, title: str, lines: list[str], date: str) -> dict[str, Any]:
    pdf = make_pdf(title, lines)
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"text": title},
        "subject": {"reference": f"Patient/{patient}"},
        "date": date,
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "data": base64.b64encode(pdf).decode(),
                }
            }
        ],
    }


def _create(services: Services, body: dict[str, Any]) -> str:
    return services.fhir.create(body["resourceType"], body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def _fill(services: Services) -> tuple[str, str, str, str, str]:
    """Two records; the first's hepatitis report masked from professionals, one of them blocked."""
    patient = _create(services, {"resourceType": "Patient", "birthDate": "1970-01-01"})
    other = _create(services, {"resourceType": "Patient", "birthDate": "1971-01-01"})
    fracture = _create(
        services,
        _document(
            patient,
            "Compte rendu des urgences",
            ["Chute à domicile.", "Poignet gauche fracturé, plâtre pour six semaines."],
            "2025-03-12T10:00:00+01:00",
        ),
    )
    hepatitis = _create(
        services,
        _document(
            patient,
            "Compte rendu de consultation",
            ["Sérologie : hépatite C chronique, charge virale à contrôler."],
            "2025-02-01T09:00:00+01:00",
        ),
    )
    glucose = _create(
        services,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {
                "coding": [
                    {"system": "http://loinc.org", "code": "2345-7", "display": "Glycémie à jeun"}
                ]
            },
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2025-01-10",
            "valueQuantity": {"value": 7.2, "unit": "mmol/L"},
            "note": [{"text": "Contrôle de l'hépatite à prévoir."}],
        },
    )
    _create(
        services,
        _document(other, "Compte rendu", ["Fracture du col du fémur."], "2025-01-01T08:00:00Z"),
    )
    person = RequestContext(Principal(Kind.PERSON, "acct-p", patient_id=patient), "acct-p")
    controls = services.controls
    controls.declare_care(person, None, GP, medecin_traitant=False)
    controls.declare_care(person, None, NURSE, medecin_traitant=False)
    controls.declare_care(person, None, BLOCKED, medecin_traitant=False)
    controls.set_block(person, None, BLOCKED, on=True)
    controls.set_mask(person, f"DocumentReference/{hepatitis}", "MASQUE_PS", on=True)
    return patient, other, fracture, hepatitis, glucose


@pytest.fixture(scope="module")
def record(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: SqliteTemplate
) -> Iterator[Record]:
    data_dir = tmp_path_factory.mktemp("search") / "data"
    migrated_sqlite.copy_into(data_dir)
    services = build_services(make_settings(data_dir), migrate=False)
    ids = _fill(services)
    yield Record(services, RecordSearch(services.fhir), *ids, data_dir)
    services.close()


def _found(record: Record, ctx: RequestContext, words: str) -> list[str]:
    return [h.res_id for h in record.search.search(ctx, record.patient, words).hits]


# -- French words -----------------------------------------------------------------------------------


def test_a_word_without_its_accents_finds_the_accented_word() -> None:
    assert set(terms("hepatite")) == set(terms("hépatite")) == set(terms("HÉPATITE"))
    assert set(terms("fracturee")) == set(terms("fracturée")) == set(terms("fracturé"))


def test_a_word_finds_its_inflections_by_stem() -> None:
    assert set(terms("fracture")) == set(terms("fracturé")) == set(terms("fractures"))
    assert set(terms("diabète")) == set(terms("diabétique"))


def test_decimal_comma_and_point_are_one_number() -> None:
    assert list(terms("7,2")) == list(terms("7.2")) == ["7.2"]


def test_search_finds_words_in_a_pdf_document_by_stem_and_without_accents(record: Record) -> None:
    results = record.search.search(AS_GP, record.patient, "fracture poignet")
    assert [h.res_id for h in results.hits] == [record.fracture]
    hit = results.hits[0]
    assert hit.kind == "document"
    assert hit.title == "Compte rendu des urgences"
    assert "<mark>fracturé</mark>" in hit.snippet.html()
    assert "<mark>Poignet</mark>" in hit.snippet.html()


def test_search_finds_structured_items_by_display_note_and_value(record: Record) -> None:
    assert _found(record, AS_GP, "glycemie") == [record.glucose]
    assert _found(record, AS_GP, "7,2") == [record.glucose]
    assert _found(record, AS_GP, "mmol") == [record.glucose]


def test_the_best_match_comes_first(record: Record) -> None:
    # the médecin... here a professional who sees the masked document too would rank it first:
    # the patient sees everything of their own record
    me = RequestContext(Principal(Kind.PERSON, "acct-p", patient_id=record.patient), "acct-p")
    found = _found(record, me, "hépatite charge virale")
    assert found == [record.hepatitis, record.glucose]


def test_snippets_escape_the_text_and_mark_only_matched_words() -> None:
    shown = snippet("Résultat <b>élevé</b> & hépatite", frozenset(terms("hepatite")))
    assert shown.html() == "Résultat &lt;b&gt;élevé&lt;/b&gt; &amp; <mark>hépatite</mark>"


def test_a_long_text_is_cut_around_the_first_match() -> None:
    text = "début " * 80 + "la fracture du poignet " + "fin " * 80
    shown = snippet(text, frozenset(terms("fracture")))
    assert shown.cut_before and shown.cut_after
    assert "<mark>fracture</mark>" in shown.html()
    assert len(shown.text) < 260


# -- the policy before ranking ----------------------------------------------------------------------


def test_a_masked_document_is_never_in_results_nor_in_snippets(record: Record) -> None:
    results = record.search.search(AS_NURSE, record.patient, "hépatite chronique virale")
    assert [h.res_id for h in results.hits] == [record.glucose]  # its note, not the document
    assert all("chronique" not in h.snippet.text for h in results.hits)
    assert results.searched == 2  # the masked document was not even loaded
    assert _found(record, AS_NURSE, "sérologie") == []


def test_a_blocked_professional_finds_nothing_and_learns_nothing(record: Record) -> None:
    for ctx, patient in ((AS_BLOCKED, record.patient), (AS_STRANGER, record.patient)):
        with pytest.raises(FhirError) as refused:
            record.search.search(ctx, patient, "fracture")
        assert refused.value.status == 404
    with pytest.raises(FhirError) as missing:
        record.search.search(AS_GP, "no-such-patient", "fracture")
    assert missing.value.status == 404
    assert str(refused.value.issues[0].diagnostics).replace(record.patient, "X") == str(
        missing.value.issues[0].diagnostics
    ).replace("no-such-patient", "X")


def test_one_record_never_shows_another_patients_items(record: Record) -> None:
    assert _found(record, AS_GP, "fémur col") == []


def test_an_empty_or_oversized_query_is_refused_with_a_clear_message(record: Record) -> None:
    for words in ("", "   ", "de la", "x" * 201):
        with pytest.raises(FhirError) as refused:
            record.search.search(AS_GP, record.patient, words)
        assert refused.value.status == 400


# -- audit, logs and disk ---------------------------------------------------------------------------


def test_every_query_is_audited_without_its_words(
    record: Record, caplog: pytest.LogCaptureFixture
) -> None:
    before = len(logged_events(record.services))
    with caplog.at_level(logging.DEBUG):
        record.search.search(AS_GP, record.patient, "plâtre semaines")
        with pytest.raises(FhirError):
            record.search.search(AS_BLOCKED, record.patient, "plâtre semaines")
    events = logged_events(record.services)[before:]
    searches = [e for e in events if e["action"] == "search" and e["type"] == "Patient"]
    assert [e["outcome"] for e in searches] == [200, 404]
    assert searches[0]["actor"] == "gp" and searches[1]["actor"] == "blocked"
    dumped = orjson.dumps(events).decode() + caplog.text
    assert "plâtre" not in dumped and "semaines" not in dumped and "platr" not in dumped


def test_search_words_never_reach_the_disk(record: Record) -> None:
    word = "xylophonique"
    assert _found(record, AS_GP, word) == []
    record.services.audit.flush()
    for path in record.data_dir.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            assert word.encode() not in raw and b"xylophon" not in raw, path


def test_an_updated_item_is_searched_in_its_new_words(record: Record) -> None:
    assert _found(record, AS_GP, "glycémie") == [record.glucose]
    body = dict(record.services.fhir.read("Observation", record.glucose, ctx=AS_GP).body or {})
    body["code"] = {"text": "Kaliémie"}
    body["note"] = []
    record.services.fhir.update("Observation", record.glucose, body, ctx=AS_LOCAL_OPERATOR)
    try:
        assert _found(record, AS_GP, "glycémie") == []
        assert _found(record, AS_GP, "kaliemie") == [record.glucose]
    finally:
        body["code"] = {"text": "Glycémie à jeun"}
        body["note"] = [{"text": "Contrôle de l'hépatite à prévoir."}]
        record.services.fhir.update("Observation", record.glucose, body, ctx=AS_LOCAL_OPERATOR)


@pytest.mark.both_backends
def test_the_visible_versions_are_listed_alike_on_every_backend(services: Services) -> None:
    patient, _other, fracture, _hepatitis, glucose = _fill(services)
    search = RecordSearch(services.fhir)
    results = search.search(AS_NURSE, patient, "hépatite fracture")
    assert {h.res_id for h in results.hits} == {fracture, glucose}
    assert results.searched == 2

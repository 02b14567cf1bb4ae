"""The catalogue read from the record store itself: through the policy path as the system
caller hub-catalogue (audited, read-only), the people who opted out of research left out, every
count rounded like any output, and the HealthDCAT-AP description still valid (0 violations)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import orjson
import pytest
from pyshacl import validate
from rdflib import Graph

from carnet.fhir.errors import FhirError
from carnet.hub.catalogue.dcat import CARNET_RECORD, dataset_graph
from carnet.hub.catalogue.from_store import catalogue_context, store_statistics
from carnet.hub.catalogue.service import CatalogueService
from carnet.hub.catalogue.shapes import SHAPES_TURTLE
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.hub_setup import PeopleStore as Store
from tests.support.hub_setup import opted_out_of_research, people_store
from tests.support.hub_store import LOINC, SNOMED, PersonSpec
from tests.support.migrated_store import SqliteTemplate

TODAY = date(2026, 12, 3)
PEOPLE = 13  # each with a Condition and a glucose result: 13 persons, 52 OMOP rows


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: SqliteTemplate
) -> Iterator[Store]:
    people = [
        PersonSpec(
            birth=f"19{60 + i}-06-15",
            conditions=["44054006"],
            glucose=[("2022-03-01T08:00:00Z", 5.0 + i)],
        )
        for i in range(PEOPLE)
    ]
    with people_store(tmp_path_factory.mktemp("catalogue-store"), migrated_sqlite, people) as made:
        yield made


def test_the_catalogue_counts_come_from_the_store_rounded(store: Store) -> None:
    stats = store_statistics(store.services, AS_LOCAL_OPERATOR, TODAY)
    assert stats.individuals == 15  # 13, to the nearest 5
    assert stats.records == 50  # 52 rows: person, condition, measurement, observation period
    assert (stats.min_age, stats.max_age) == (TODAY.year - 1972, TODAY.year - 1960)
    assert (stats.first_date, stats.last_date) == (date(2021, 3, 4), date(2022, 3, 1))
    assert {SNOMED, LOINC, "http://unitsofmeasure.org"} <= set(stats.coding_systems)
    assert "urn:example:mrn" not in stats.coding_systems  # identifiers are never read
    tables = {t.table: t for t in stats.tables}
    assert tables["condition_occurrence"].records == 15
    assert tables["measurement"].quality.uniqueness == 1.0
    assert tables["condition_occurrence"].quality.validity == 0.0  # no vocabulary: concept 0


def test_people_who_opted_out_are_not_in_the_catalogue(store: Store) -> None:
    with opted_out_of_research(store, 0):
        stats = store_statistics(store.services, AS_LOCAL_OPERATOR, TODAY)
    assert stats.individuals == 10  # 12, to the nearest 5
    assert stats.max_age == TODAY.year - 1961  # the one born in 1960 is not counted


def test_the_catalogue_reads_are_audited_as_the_catalogue(store: Store) -> None:
    store_statistics(store.services, AS_LOCAL_OPERATOR, TODAY)
    store.services.audit.flush()
    page = store.services.audit.patient_history(
        store.patients[2], AS_LOCAL_OPERATOR, count=50, offset=0
    )
    actors = [orjson.loads(e.body).get("actor") for e in page.events]
    assert "hub-catalogue" in actors


def test_the_catalogue_caller_reads_and_cannot_write(store: Store) -> None:
    caller = catalogue_context(AS_LOCAL_OPERATOR)
    with pytest.raises(FhirError) as refused:
        store.services.fhir.create(
            "Observation",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": f"Patient/{store.patients[0]}"},
            },
            ctx=caller,
        )
    assert refused.value.status == 403


def test_the_description_from_the_store_has_no_violation(store: Store, tmp_path: Path) -> None:
    stats = store_statistics(store.services, AS_LOCAL_OPERATOR, TODAY)
    graph = dataset_graph("https://carnet.example", CARNET_RECORD, stats)
    shapes = Graph().parse(data=SHAPES_TURTLE, format="turtle")
    conforms, _report, text = validate(graph, shacl_graph=shapes, inference="none", advanced=True)
    assert conforms, text
    described = CatalogueService("https://carnet.example", tmp_path).describe(stats)
    assert described == {"id": "carnet-record", "records": 50, "individuals": 15}

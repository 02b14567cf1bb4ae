"""The catalogue's HealthDCAT-AP description: generated from an OMOP database, valid against
Carnet's shapes for release 8 (0 violations), and removing the access body gives exactly one."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
from pyshacl import validate
from rdflib import Graph

from carnet.hub.catalogue.dcat import CARNET_RECORD, HEALTHDCATAP, dataset_graph, serialised
from carnet.hub.catalogue.shapes import SHAPES_TURTLE
from carnet.hub.catalogue.statistics import DatasetStatistics, dataset_statistics

TODAY = date(2026, 12, 3)


@pytest.fixture(scope="module")
def omop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("catalogue") / "omop.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute(
        "CREATE TABLE person (person_id BIGINT, gender_concept_id INTEGER, year_of_birth INTEGER)"
    )
    conn.execute(
        "INSERT INTO person SELECT i, CASE WHEN i % 2 = 0 THEN 8507 ELSE 8532 END, 1940 + i % 60"
        " FROM range(1, 41) AS t(i)"
    )
    conn.execute(
        "CREATE TABLE condition_occurrence (condition_occurrence_id BIGINT, person_id BIGINT,"
        " condition_concept_id INTEGER, condition_start_date DATE, condition_end_date DATE,"
        " condition_source_value VARCHAR)"
    )
    # 30 conditions: 3 unmapped (concept 0), one of an unknown person, one ending before it starts
    conn.execute(
        "INSERT INTO condition_occurrence SELECT i, i, CASE WHEN i <= 3 THEN 0 ELSE 201826 END,"
        " DATE '2024-01-01' + CAST(i AS INTEGER), NULL, 'E11' FROM range(1, 31) AS t(i)"
    )
    conn.execute(
        "UPDATE condition_occurrence SET person_id = 999 WHERE condition_occurrence_id = 30"
    )
    conn.execute(
        "UPDATE condition_occurrence SET condition_end_date = DATE '2020-01-01'"
        " WHERE condition_occurrence_id = 29"
    )
    conn.close()
    return path


@pytest.fixture(scope="module")
def stats(omop: Path) -> DatasetStatistics:
    conn = duckdb.connect(str(omop), read_only=True)
    try:
        return dataset_statistics(conn, TODAY)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def shapes() -> Graph:
    return Graph().parse(data=SHAPES_TURTLE, format="turtle")


def test_counts_are_rounded_like_any_output(stats: DatasetStatistics) -> None:
    assert stats.records == 70  # 40 persons + 30 conditions, to the nearest 5
    assert stats.individuals == 40
    assert (stats.min_age, stats.max_age) == (TODAY.year - 1980, TODAY.year - 1941)
    assert stats.first_date == date(2024, 1, 2)
    assert "http://id.who.int/icd/release/10" in stats.coding_systems


def test_quality_label_per_table(stats: DatasetStatistics) -> None:
    conditions = next(t for t in stats.tables if t.table == "condition_occurrence")
    assert conditions.quality.validity == 0.9  # 27 of 30 mapped
    assert conditions.quality.uniqueness == 1.0
    assert conditions.quality.consistency == round(28 / 30, 4)  # unknown person, end before start
    assert conditions.quality.timeliness < 1.0  # latest date early 2024, almost 3 years ago
    assert 0 < conditions.quality.completeness < 1  # the end dates are mostly empty


def test_the_description_has_no_violation(stats: DatasetStatistics, shapes: Graph) -> None:
    graph = dataset_graph("https://carnet.example", CARNET_RECORD, stats)
    conforms, _report, text = validate(graph, shacl_graph=shapes, inference="none", advanced=True)
    assert conforms, text


def test_removing_the_access_body_gives_exactly_one_violation(
    stats: DatasetStatistics, shapes: Graph
) -> None:
    graph = dataset_graph("https://carnet.example", CARNET_RECORD, stats)
    graph.remove((None, HEALTHDCATAP.hdab, None))
    conforms, report, text = validate(graph, shacl_graph=shapes, inference="none", advanced=True)
    assert not conforms
    results = report.query("SELECT ?r WHERE { ?r a <http://www.w3.org/ns/shacl#ValidationResult> }")
    assert len(list(results)) == 1, text
    assert "access body" in text


# rdflib's JSON-LD parser still builds a ConjunctiveGraph internally (its warning, not ours)
@pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
def test_json_ld_and_turtle_describe_the_same_graph(stats: DatasetStatistics) -> None:
    graph = dataset_graph("https://carnet.example", CARNET_RECORD, stats)
    from_json = Graph().parse(data=serialised(graph, "json-ld"), format="json-ld")
    from_turtle = Graph().parse(data=serialised(graph, "turtle"), format="turtle")
    assert len(from_json) == len(from_turtle) == len(graph)
    assert json.loads(serialised(graph, "json-ld"))


def test_the_catalogue_is_served_at_stable_urls_without_sign_in(omop: Path, tmp_path: Path) -> None:
    from carnet.hub.catalogue.service import CatalogueService

    service = CatalogueService("https://carnet.example", tmp_path / "catalogue")
    described = service.refresh(omop, TODAY)
    assert described == {"id": "carnet-record", "records": 70, "individuals": 40}
    assert (
        service.datasets()[0]["turtle"] == "https://carnet.example/hub/catalogue/carnet-record.ttl"
    )
    turtle = service.document("carnet-record", "ttl")
    assert turtle is not None
    assert Graph().parse(data=turtle, format="turtle")
    assert service.document("../secret", "ttl") is None
    assert service.document("carnet-record", "exe") is None


def test_a_table_without_an_end_date_is_described_by_its_start_dates(tmp_path: Path) -> None:
    """measurement, procedure_occurrence and observation have a start date only."""
    conn = duckdb.connect(str(tmp_path / "omop.duckdb"))
    try:
        conn.execute(
            "CREATE TABLE measurement AS SELECT i AS measurement_id, i AS person_id,"
            " 3004410 AS measurement_concept_id, DATE '2024-01-01' + CAST(i AS INTEGER)"
            " AS measurement_date FROM range(1, 11) AS t(i)"
        )
        stats = dataset_statistics(conn, TODAY)
    finally:
        conn.close()
    assert (stats.first_date, stats.last_date) == (date(2024, 1, 2), date(2024, 1, 11))
    assert stats.tables[0].records == 10

"""The nesting limit: a resource deeper than MAX_NESTING levels is a 400 before anything walks it
recursively, and one at the limit goes through validation and indexing whole (orjson, which
enforces the limit, jsonschema-rs and the indexer's FHIRPath all handle that depth)."""

from __future__ import annotations

from typing import Any

import pytest

from carnet.crypto.blind_index import BlindIndexer
from carnet.fhir.definitions import Definitions, load_definitions
from carnet.fhir.errors import FhirError
from carnet.fhir.indexer import Indexer
from carnet.fhir.validation import MAX_NESTING, Validator, check_nesting
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def definitions(tmp_path_factory: pytest.TempPathFactory) -> Definitions:
    settings = make_settings(tmp_path_factory.mktemp("defs"))
    return load_definitions(settings.definitions_dir)


def _nested_lists(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def _patient(levels: int) -> dict[str, Any]:
    """A Patient whose extensions nest to exactly ``levels`` JSON levels (an odd number)."""
    ext: dict[str, Any] = {"url": "http://example.org/leaf", "valueString": "v"}
    for _ in range((levels - 3) // 2):
        ext = {"url": "http://example.org/nested", "extension": [ext]}
    return {"resourceType": "Patient", "extension": [ext]}


def test_nesting_limit_is_the_serialiser_limit() -> None:
    assert MAX_NESTING == 254
    check_nesting(_nested_lists(MAX_NESTING))
    with pytest.raises(FhirError) as refused:
        check_nesting(_nested_lists(MAX_NESTING + 1))
    assert refused.value.status == 400
    assert refused.value.issues[0].code == "too-costly"
    check_nesting("a scalar")


def test_resource_at_the_nesting_limit_is_validated_and_indexed(definitions: Definitions) -> None:
    deepest = _patient(MAX_NESTING - 1)
    validator = Validator(definitions)
    assert validator.validate(deepest) == "Patient"
    Indexer(definitions, BlindIndexer(b"k" * 32)).index("Patient", "p1", deepest)
    with pytest.raises(FhirError) as refused:
        validator.validate(_patient(MAX_NESTING + 1))
    assert refused.value.status == 400

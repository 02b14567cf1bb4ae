"""A resource type's schema is compiled once per process, whichever Validator asks for it: each
build of the services makes a new Validator, and a compile costs 60-100 ms per type."""

from __future__ import annotations

from pathlib import Path

from carnet.fhir.definitions import load_definitions
from carnet.fhir.validation import Validator
from tests.conftest import make_settings


def test_validators_of_one_definitions_share_each_compiled_schema(tmp_path: Path) -> None:
    definitions = load_definitions(make_settings(tmp_path / "data").definitions_dir)
    first, second = Validator(definitions), Validator(definitions, max_resource_bytes=10)
    first.validate({"resourceType": "Patient", "gender": "female"})
    assert second._schema_validator("Patient") is first._schema_validator("Patient")


def _refs(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node))
    return set()


def test_a_types_schema_holds_every_definition_it_reaches_and_no_other_resource_type(
    tmp_path: Path,
) -> None:
    """The published ResourceList (a oneOf of all 146 types) made each type's schema the whole
    FHIR schema; a resource inside is validated on its own instead, so each type's schema holds
    only what it reaches, and every reference in it resolves inside it."""
    definitions = load_definitions(make_settings(tmp_path / "data").definitions_dir)
    for resource_type in ("Patient", "Bundle", "Parameters", "Observation"):
        schema = definitions.type_schema(resource_type)
        held = schema["definitions"]
        assert {ref.rsplit("/", 1)[-1] for ref in _refs(schema)} <= set(held), resource_type
        assert not (set(held) & definitions.resource_types) - {resource_type}, resource_type
        assert len(held) < len(definitions.schema_definitions) / 4, resource_type
    assert "HumanName" in definitions.type_schema("Patient")["definitions"]

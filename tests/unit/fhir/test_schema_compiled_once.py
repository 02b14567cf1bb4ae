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

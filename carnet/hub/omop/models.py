"""Tables of the extraction: the extraction log and the pseudonym map, kept in the record store.

Neither ever goes into an extract. ``hub_extraction_person`` says which patients went into which
project's extract under which pseudonym (the patient's "projects that used my data", and the only
way back from a pseudonym to a record); ``hub_extraction.source_map`` is the FHIR-id mapping of
the extract's rows (OMOP table and row id to FHIR type and id), encrypted under the project's own
data key, kept outside the OMOP schema as the FHIR-to-OMOP IG requires.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table, Text

from carnet.db.metadata import metadata

hub_extraction = Table(
    "hub_extraction",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(80), nullable=False),
    Column("permit_id", String(80), nullable=False),
    Column("engine", String(8), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("output_hash", String(64), nullable=False),
    Column("vocabulary_version", String(200), nullable=False),
    Column("key_generation", Integer, nullable=False),
    Column("row_counts", Text, nullable=False),  # JSON: table -> rows
    Column("excluded_opted_out", Integer, nullable=False),
    Column("released", Integer, nullable=False),  # 0 when the risk report blocked the release
    Column("source_map", LargeBinary, nullable=True),  # encrypted JSON, see the module docstring
)
Index("ix_hub_extraction_project", hub_extraction.c.project_id)

hub_extraction_person = Table(
    "hub_extraction_person",
    metadata,
    Column("extraction_id", String(36), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
    Column("person_id", BigInteger, nullable=False),
)
Index("ix_hub_extraction_person_patient", hub_extraction_person.c.patient_id)

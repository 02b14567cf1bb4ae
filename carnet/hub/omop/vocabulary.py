"""Standard concepts for coded values: none shipped, an Athena download remapped on request.

SNOMED CT, ATC and CIM-10 may not be redistributed, and LOINC is not shipped either (its notice
and licence would have to travel with Carnet), so by default every coded value maps to concept 0,
keeps its code verbatim in ``*_source_value`` and is listed in the unmapped-codes report. An
operator who holds an OHDSI Athena download points the extraction at its folder: CONCEPT.csv
(tab-separated, as Athena ships it), and if present CONCEPT_RELATIONSHIP.csv ("Maps to") and
VOCABULARY.csv (for the version recorded with every run). Only standard concepts (``S``) ever
land in a ``*_concept_id`` column (FHIR-to-OMOP IG F2O rules).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

LOCAL_CONCEPT_START = 2_000_000_000
"""Local concepts (codes no vocabulary knows) are numbered from here, as OMOP reserves."""

BUILTIN_VERSION = "carnet-builtin-1 (no standard vocabulary loaded)"

# FHIR code systems and the OMOP vocabulary_id that holds their codes.
SYSTEM_VOCABULARIES = {
    "http://loinc.org": "LOINC",
    "http://snomed.info/sct": "SNOMED",
    "http://www.whocc.no/atc": "ATC",
    "http://hl7.org/fhir/sid/icd-10": "ICD10",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD10CM",
    "https://smt.esante.gouv.fr/terminologie-cim-10/": "ICD10",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://hl7.org/fhir/sid/cvx": "CVX",
    "http://unitsofmeasure.org": "UCUM",
}

# Type, gender and visit concepts the CDM itself requires: OMOP's published standard ids.
EHR_TYPE = 32817  # "EHR"
GENDER = {"male": 8507, "female": 8532}
VISIT_BY_CLASS = {"IMP": 9201, "ACUTE": 9201, "AMB": 9202, "EMER": 9203, "HH": 581476}


@dataclass(frozen=True)
class Concept:
    concept_id: int
    standard: bool


@dataclass
class Vocabulary:
    """Concepts by (vocabulary_id, concept_code); empty by default."""

    version: str = BUILTIN_VERSION
    concepts: dict[tuple[str, str], Concept] = field(default_factory=dict)
    maps_to: dict[int, int] = field(default_factory=dict)  # non-standard -> standard concept

    def lookup(self, system: str | None, code: str) -> tuple[int, int | None]:
        """(standard concept id or 0, the source concept id if the vocabulary knows the code)."""
        vocabulary = SYSTEM_VOCABULARIES.get(system or "")
        concept = self.concepts.get((vocabulary, code)) if vocabulary else None
        if concept is None:
            return 0, None
        if concept.standard:
            return concept.concept_id, concept.concept_id
        return self.maps_to.get(concept.concept_id, 0), concept.concept_id


def load_athena(folder: Path) -> Vocabulary:
    """The concepts of an Athena download (CONCEPT.csv, optional CONCEPT_RELATIONSHIP.csv and
    VOCABULARY.csv). ``ValueError`` when CONCEPT.csv is missing or lacks Athena's columns."""
    concept_file = folder / "CONCEPT.csv"
    if not concept_file.is_file():
        raise ValueError(f"no CONCEPT.csv in {folder}")
    concepts: dict[tuple[str, str], Concept] = {}
    standard_ids: set[int] = set()
    with concept_file.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        needed = {"concept_id", "vocabulary_id", "concept_code", "standard_concept"}
        if not needed <= set(reader.fieldnames or ()):
            raise ValueError("CONCEPT.csv lacks Athena's columns (tab-separated, with a header)")
        for row in reader:
            if row.get("invalid_reason"):
                continue  # retired or replaced concepts never map
            concept_id = int(row["concept_id"])
            standard = row["standard_concept"] == "S"
            concepts[(row["vocabulary_id"], row["concept_code"])] = Concept(concept_id, standard)
            if standard:
                standard_ids.add(concept_id)
    maps_to: dict[int, int] = {}
    relationship_file = folder / "CONCEPT_RELATIONSHIP.csv"
    if relationship_file.is_file():
        with relationship_file.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            for row in reader:
                target = int(row["concept_id_2"])
                mapping = row["relationship_id"] == "Maps to" and not row.get("invalid_reason")
                if mapping and target in standard_ids:  # only ever to a standard concept
                    maps_to.setdefault(int(row["concept_id_1"]), target)
    return Vocabulary(_version(folder, concept_file), concepts, maps_to)


def _version(folder: Path, concept_file: Path) -> str:
    """Athena's release ("None" row of VOCABULARY.csv), else a digest of CONCEPT.csv."""
    vocabulary_file = folder / "VOCABULARY.csv"
    if vocabulary_file.is_file():
        with vocabulary_file.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                if row.get("vocabulary_id") == "None" and row.get("vocabulary_version"):
                    return f"athena {row['vocabulary_version']}"[:200]
    digest = hashlib.sha256(concept_file.read_bytes()).hexdigest()[:16]
    return f"athena CONCEPT.csv sha256:{digest}"

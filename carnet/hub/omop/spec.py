"""The interface between permits (carnet/hub) and the extraction engine (carnet/hub/omop).

hub-permits builds an `ExtractionSpec` from an active permit and calls
`carnet.hub.omop.service.extract(services, ctx, spec)`, which returns an `ExtractionResult`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DateHandling = Literal["shift", "year", "month", "exact"]
Engine = Literal["duckdb", "spark"]

OMOP_TABLES: frozenset[str] = frozenset(
    {
        "person",
        "observation_period",
        "visit_occurrence",
        "condition_occurrence",
        "drug_exposure",
        "procedure_occurrence",
        "measurement",
        "observation",
        "death",
    }
)


@dataclass(frozen=True)
class ExtractionSpec:
    """What a permit allows to leave the record store, and how.

    `columns` maps a table to its permitted columns; a table in `tables` with no entry in
    `columns` gets all of its CDM 5.4 columns. `k_threshold` is the permit's k: release is
    blocked when the extract's smallest equivalence class on `quasi_identifiers` is below it.
    """

    project_id: str
    permit_id: str
    tables: frozenset[str]
    columns: Mapping[str, frozenset[str]]
    dates: DateHandling
    k_threshold: int
    quasi_identifiers: tuple[str, ...]
    engine: Engine
    output_dir: Path


@dataclass(frozen=True)
class RiskReport:
    """Re-identification risk of one extract on its quasi-identifiers (ARX's models)."""

    quasi_identifiers: tuple[str, ...]
    records: int
    classes: int
    k_anonymity: int
    l_diversity: int
    prosecutor_risk: float
    marketer_risk: float
    records_below_k: int
    k_threshold: int
    suppressed_records: int
    generalisation: tuple[str, ...]
    release_blocked: bool


@dataclass(frozen=True)
class ExtractionResult:
    """What one extraction produced; the extract holds no identifier and no pseudonym map."""

    extract_path: Path
    row_counts: Mapping[str, int]
    unmapped_codes_report_path: Path
    risk_report: RiskReport
    output_hash: str
    vocabulary_version: str
    excluded_opted_out: int
    dropped_records: Mapping[str, int] = field(default_factory=dict)

"""The staging step: mapped rows of the people in the extract, pseudonymised, once, as Parquet.

Everything both engines need is decided here, so that DuckDB and Spark only select, filter and
sort the same staged rows: person ids (the project's keyed pseudonyms, one hash per person),
dates shifted or generalised, concepts resolved (standard concepts only, 0 otherwise, local
source concepts from 2,000,000,000), row ids in a canonical order, visits linked. What must not
leave the record store stays in the returned ``Staged`` (the pseudonym map, the FHIR-id mapping)
and never in the staged files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from carnet.hub.omop.cdm import ARROW_TYPES, TABLES, CdmTable
from carnet.hub.omop.mapping import MappedRow, map_resource
from carnet.hub.omop.spec import DateHandling
from carnet.hub.omop.vocabulary import EHR_TYPE, LOCAL_CONCEPT_START, Vocabulary

QI_TABLE = "person_qi"  # per-person quasi-identifiers that are not CDM columns (département)
_HELPERS = ("_patient", "_res_type", "_res_id", "_encounter")
_DAY_MICROS = 86_400_000_000


class Source(Protocol):
    """A stored resource as the FHIR session gives it (carnet.fhir.repository.StoredResource)."""

    @property
    def res_type(self) -> str: ...
    @property
    def res_id(self) -> str: ...
    @property
    def patient_id(self) -> str | None: ...
    @property
    def body(self) -> dict[str, Any] | None: ...


class Pseudonyms(Protocol):
    """The project's pseudonym function (carnet.crypto.pseudonyms.ProjectPseudonyms)."""

    def person_id(self, patient_id: str) -> int: ...
    def shift_days(self, patient_id: str) -> int: ...


@dataclass
class Staged:
    """The staged tables (Parquet) and what stays in the record store."""

    folder: Path
    files: dict[str, Path]
    persons: dict[str, int]  # patient id -> person_id: the pseudonym map
    source_map: pa.Table  # omop_table, row_id, res_type, res_id: the FHIR-id mapping
    unmapped: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    local_concepts: dict[tuple[str, str], int] = field(default_factory=dict)
    dropped: Counter[str] = field(default_factory=Counter)
    excluded_opted_out: int = 0
    coding_systems: tuple[str, ...] = ()  # the systems of every code met, for the catalogue


def generalised_dates(days: pa.Array, shifts: pa.Array, dates: DateHandling) -> pa.Array:
    """Dates as the permit allows them out: exact, each moved by its person's days (``shifts``,
    one per row), or the first day of their month or year."""
    if dates == "exact":
        return days
    if dates == "shift":
        return pc.add(days.cast(pa.int32()), shifts).cast(pa.date32())
    return pc.floor_temporal(days, unit="month" if dates == "month" else "year")


def generalised_moments(moments: pa.Array, shifts: pa.Array, dates: DateHandling) -> pa.Array:
    """Moments kept or shifted by whole days; dropped when dates are generalised to months or
    years."""
    if dates == "exact":
        return moments
    if dates == "shift":
        micros = pc.multiply(shifts.cast(pa.int64()), _DAY_MICROS)
        return pc.add(moments.cast(pa.int64()), micros).cast(pa.timestamp("us"))
    return pa.nulls(len(moments), pa.timestamp("us"))


@dataclass
class _Collected:
    """One CDM table's rows as mapped, kept column-wise until ``finish`` builds Arrow columns
    in one pass per column (a row-by-row append costs more than the mapping itself)."""

    values: list[dict[str, Any]] = field(default_factory=list)
    persons: list[int] = field(default_factory=list)
    shifts: list[int] = field(default_factory=list)
    helpers: dict[str, list[Any]] = field(default_factory=lambda: {h: [] for h in _HELPERS})
    # column -> (row index, value): coded values resolved here, set over the mapped values
    resolved: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)


class Stager:
    """Collects mapped rows batch by batch, then writes the staged tables (``finish``)."""

    def __init__(
        self,
        pseudonyms: Pseudonyms,
        vocabulary: Vocabulary,
        dates: DateHandling,
        opted_out: Callable[[Collection[str]], set[str]],
    ) -> None:
        self.pseudonyms = pseudonyms
        self.vocabulary = vocabulary
        self.dates = dates
        self.opted_out = opted_out
        self._people: dict[str, tuple[int, int] | None] = {}  # None: opted out
        self._with_patient: set[str] = set()
        self._departements: dict[str, str | None] = {}
        self._rows: dict[str, _Collected] = {name: _Collected() for name in TABLES}
        self._concepts: dict[tuple[str | None, str], tuple[int, int | None]] = {}
        self._unknown: set[tuple[str, str]] = set()  # (system, code) no vocabulary knows
        self._local: dict[tuple[str, str], int] = {}
        self.unmapped: Counter[tuple[str, str, str, str]] = Counter()
        self.dropped: Counter[str] = Counter()

    def _meet(self, patient_ids: set[str]) -> None:
        """(person_id, shift) of the patients first seen in a batch, hashed once each; None
        for those who opted out (asked once per batch)."""
        new = patient_ids - self._people.keys()
        if not new:
            return
        excluded = self.opted_out(new)
        for patient_id in new:
            self._people[patient_id] = (
                None
                if patient_id in excluded
                else (self.pseudonyms.person_id(patient_id), self.pseudonyms.shift_days(patient_id))
            )

    def add(self, batch: Iterable[Source]) -> None:
        batch = list(batch)
        self._meet({s.patient_id for s in batch if s.patient_id is not None})
        for stored in batch:
            patient_id, body = stored.patient_id, stored.body
            if patient_id is None or body is None:
                continue  # outside any record: reference data, not a person's
            person = self._people[patient_id]
            if person is None:
                if stored.res_type == "Patient":
                    self._with_patient.add(patient_id)
                continue
            mapped = map_resource(stored.res_type, stored.res_id, patient_id, body)
            if mapped.dropped:
                self.dropped[mapped.dropped] += 1
            if mapped.person is not None:
                self._with_patient.add(patient_id)
                self._departements[patient_id] = mapped.person.departement
            for row in mapped.rows:
                self._collect(row, person)

    def _collect(self, row: MappedRow, person: tuple[int, int]) -> None:
        got = self._rows[row.table]
        index = len(got.values)
        got.values.append(row.values)
        got.persons.append(person[0])
        got.shifts.append(person[1])
        helpers = got.helpers
        helpers["_patient"].append(row.patient_id)
        helpers["_res_type"].append(row.res_type)
        helpers["_res_id"].append(row.res_id)
        helpers["_encounter"].append(row.encounter_id)
        resolved = got.resolved
        for coded in row.coded:
            key = (coded.system, coded.code)
            found = self._concepts.get(key)
            if found is None:
                found = self._concepts[key] = self.vocabulary.lookup(coded.system, coded.code)
            concept_id, source_concept_id = found
            resolved.setdefault(coded.concept_column, []).append((index, concept_id))
            if coded.source_column:
                resolved.setdefault(coded.source_column, []).append((index, coded.code))
            if concept_id == 0:
                self.unmapped[
                    (row.table, coded.concept_column, coded.system or "", coded.code)
                ] += 1
            if coded.source_concept_column:
                if source_concept_id is None:  # numbered locally at the end, in code order
                    unknown = (coded.system or "", coded.code)
                    self._unknown.add(unknown)
                    resolved.setdefault(coded.source_concept_column, []).append((index, unknown))
                else:
                    resolved.setdefault(coded.source_concept_column, []).append(
                        (index, source_concept_id)
                    )

    # -- the end of the read: ids, links, files ----------------------------------------------

    def finish(self, folder: Path) -> Staged:
        """Write the staged tables into ``folder`` (a private directory of the record store)."""
        local = self._local_concepts()
        kept = {p for p in self._with_patient if self._people.get(p) is not None}
        persons = {p: person[0] for p in kept if (person := self._people[p]) is not None}
        excluded = sum(1 for p in self._with_patient if self._people.get(p) is None)
        folder.mkdir(parents=True, exist_ok=True)
        kept_ids = pa.array(sorted(kept), pa.string())
        tables = {name: self._table(name, kept_ids) for name in TABLES}
        visits = tables["visit_occurrence"]
        visit_ids = dict(
            zip(
                visits["_res_id"].to_pylist(),
                visits["visit_occurrence_id"].to_pylist(),
                strict=True,
            )
        )
        maps = []
        for name, table in tables.items():
            if "visit_occurrence_id" in table.column_names and name != "visit_occurrence":
                linked = [visit_ids.get(e) for e in table["_encounter"].to_pylist()]
                index = table.column_names.index("visit_occurrence_id")
                table = table.set_column(index, "visit_occurrence_id", pa.array(linked, pa.int64()))
            maps.append(
                pa.table(
                    {
                        "omop_table": pa.array([name] * table.num_rows, pa.string()),
                        "row_id": table[TABLES[name].key],
                        "res_type": table["_res_type"],
                        "res_id": table["_res_id"],
                    }
                )
            )
            tables[name] = table.select(list(TABLES[name].column_names))
        source_map = pa.concat_tables(maps)
        systems = tuple(sorted({system for system, _ in self._concepts if system}))
        staged = Staged(
            folder, {}, persons, source_map, self.unmapped, local, self.dropped, excluded, systems
        )
        tables["observation_period"] = _observation_periods(tables)
        for name, table in tables.items():
            staged.files[name] = folder / f"{name}.parquet"
            pq.write_table(table, staged.files[name])
        qi = pa.table(
            {
                "person_id": pa.array([persons[p] for p in sorted(kept)], pa.int64()),
                "departement": pa.array([self._departements.get(p) for p in sorted(kept)]),
            }
        )
        staged.files[QI_TABLE] = folder / f"{QI_TABLE}.parquet"
        pq.write_table(qi, staged.files[QI_TABLE])
        return staged

    def _local_concepts(self) -> dict[tuple[str, str], int]:
        """Codes no vocabulary knows get local source concepts, numbered from 2,000,000,000 in
        the order of (system, code), so a run on the same data gives the same numbers."""
        self._local = {
            key: LOCAL_CONCEPT_START + number for number, key in enumerate(sorted(self._unknown))
        }
        return self._local

    def _table(self, name: str, kept: pa.Array) -> pa.Table:
        cdm: CdmTable = TABLES[name]
        got = self._rows[name]
        shifts = pa.array(got.shifts, pa.int32())
        arrays: dict[str, pa.Array] = {}
        dated: list[pa.Array] = []  # the date columns in CDM order: the first set sorts the row
        for column, kind in cdm.columns:
            raw = [values.get(column) for values in got.values]
            local = self._local
            for index, value in got.resolved.get(column, ()):
                # a (system, code) pair stands for the local concept it is numbered at the end
                raw[index] = local[value] if type(value) is tuple else value
            array = pa.array(raw, ARROW_TYPES[kind])
            if kind == "date":
                array = generalised_dates(array, shifts, self.dates)
                dated.append(array)
            elif kind == "ts":
                array = generalised_moments(array, shifts, self.dates)
            arrays[column] = array
        arrays["person_id"] = pa.array(got.persons, pa.int64())
        if name == "person":
            born = pa.array([values.get("birth_date") for values in got.values], pa.date32())
            born = generalised_dates(born, shifts, self.dates)
            nothing = pa.nulls(len(born), pa.int64())
            arrays["year_of_birth"] = pc.year(born)
            arrays["month_of_birth"] = pc.month(born) if self.dates != "year" else nothing
            keep_day = self.dates in ("exact", "shift")
            arrays["day_of_birth"] = pc.day(born) if keep_day else nothing
        for helper in ("_patient", "_res_type", "_res_id", "_encounter"):
            arrays[helper] = pa.array(got.helpers[helper], pa.string())
        arrays["_sort_date"] = (
            pc.coalesce(*dated) if dated else pa.nulls(len(got.values), pa.date32())
        )
        table = pa.table(arrays)
        table = table.filter(pc.is_in(table["_patient"], kept))
        order = [
            ("person_id", "ascending"),
            ("_sort_date", "ascending"),
            ("_res_type", "ascending"),
            ("_res_id", "ascending"),
        ]
        table = table.sort_by(order)
        if cdm.key != "person_id":
            ids = pa.array(range(1, table.num_rows + 1), pa.int64())
            table = table.set_column(table.column_names.index(cdm.key), cdm.key, ids)
        return table


def _observation_periods(tables: dict[str, pa.Table]) -> pa.Table:
    """One period per person, from their first to their last dated event in the extract."""
    parts = []
    for name, table in tables.items():
        if name in ("person", "observation_period", "death"):
            continue
        for column, kind in TABLES[name].columns:
            if kind == "date":
                parts.append(pa.table({"person_id": table["person_id"], "day": table[column]}))
    events = pa.concat_tables(parts).filter(pc.is_valid(pc.field("day")))
    spans = events.group_by("person_id").aggregate([("day", "min"), ("day", "max")])
    spans = spans.sort_by("person_id")
    count = spans.num_rows
    return pa.table(
        {
            "observation_period_id": pa.array(range(1, count + 1), pa.int64()),
            "person_id": spans["person_id"],
            "observation_period_start_date": spans["day_min"],
            "observation_period_end_date": spans["day_max"],
            "period_type_concept_id": pa.array([EHR_TYPE] * count, pa.int64()),
        }
    )

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
from datetime import date, datetime, timedelta
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
_HELPERS = ("_patient", "_res_type", "_res_id", "_encounter", "_sort_date")


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
    source_map: list[tuple[str, int, str, str]]  # (table, row id, FHIR type, FHIR id)
    unmapped: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    local_concepts: dict[tuple[str, str], int] = field(default_factory=dict)
    dropped: Counter[str] = field(default_factory=Counter)
    excluded_opted_out: int = 0


def generalise(value: date | None, dates: DateHandling, shift: int) -> date | None:
    """A date as the permit allows it out: exact, shifted by the person's days, or the first
    day of its month or year."""
    if value is None or dates == "exact":
        return value
    if dates == "shift":
        return value + timedelta(days=shift)
    if dates == "month":
        return value.replace(day=1)
    return value.replace(month=1, day=1)


def generalise_moment(value: datetime | None, dates: DateHandling, shift: int) -> datetime | None:
    """A moment: kept or shifted; dropped when dates are generalised to months or years."""
    if value is None or dates == "exact":
        return value
    if dates == "shift":
        return value + timedelta(days=shift)
    return None


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
        self._columns: dict[str, dict[str, list[Any]]] = {
            name: {c: [] for c in (*table.column_names, *_HELPERS)}
            for name, table in TABLES.items()
        }
        self._unknown: dict[tuple[str, str], list[tuple[list[Any], int]]] = {}
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
                self._append(row, person)

    def _append(self, row: MappedRow, person: tuple[int, int]) -> None:
        person_id, shift = person
        columns = self._columns[row.table]
        values = dict(row.values)
        if row.table == "person":
            born = generalise(values.pop("birth_date", None), self.dates, shift)
            values["year_of_birth"] = born.year if born else None
            values["month_of_birth"] = born.month if born and self.dates != "year" else None
            keep_day = born is not None and self.dates in ("exact", "shift")
            values["day_of_birth"] = born.day if keep_day and born else None
        sort_date: date | None = None
        for name, kind in TABLES[row.table].columns:
            value = values.get(name)
            if kind == "date":
                value = generalise(value, self.dates, shift)
                sort_date = sort_date or value
            elif kind == "ts":
                value = generalise_moment(value, self.dates, shift)
            columns[name].append(value)
        columns["person_id"][-1] = person_id
        for coded in row.coded:
            concept_id, source_concept_id = self.vocabulary.lookup(coded.system, coded.code)
            columns[coded.concept_column][-1] = concept_id
            if coded.source_column:
                columns[coded.source_column][-1] = coded.code  # verbatim
            if concept_id == 0:
                key = (row.table, coded.concept_column, coded.system or "", coded.code)
                self.unmapped[key] += 1
            if coded.source_concept_column:
                if source_concept_id is None:
                    target = columns[coded.source_concept_column]
                    self._unknown.setdefault((coded.system or "", coded.code), []).append(
                        (target, len(target) - 1)
                    )
                else:
                    columns[coded.source_concept_column][-1] = source_concept_id
        columns["_patient"].append(row.patient_id)
        columns["_res_type"].append(row.res_type)
        columns["_res_id"].append(row.res_id)
        columns["_encounter"].append(row.encounter_id)
        columns["_sort_date"].append(sort_date)

    # -- the end of the read: ids, links, files ----------------------------------------------

    def finish(self, folder: Path) -> Staged:
        """Write the staged tables into ``folder`` (a private directory of the record store)."""
        local = self._local_concepts()
        kept = {p for p in self._with_patient if self._people.get(p) is not None}
        persons = {p: person[0] for p in kept if (person := self._people[p]) is not None}
        excluded = sum(1 for p in self._with_patient if self._people.get(p) is None)
        folder.mkdir(parents=True, exist_ok=True)
        staged = Staged(folder, {}, persons, [], self.unmapped, local, self.dropped, excluded)
        tables = {name: self._table(name, kept) for name in TABLES}
        visits = tables["visit_occurrence"]
        visit_ids = dict(
            zip(
                visits["_res_id"].to_pylist(),
                visits["visit_occurrence_id"].to_pylist(),
                strict=True,
            )
        )
        for name, table in tables.items():
            if "visit_occurrence_id" in table.column_names and name != "visit_occurrence":
                linked = [visit_ids.get(e) for e in table["_encounter"].to_pylist()]
                index = table.column_names.index("visit_occurrence_id")
                table = table.set_column(index, "visit_occurrence_id", pa.array(linked, pa.int64()))
            key = TABLES[name].key
            staged.source_map.extend(
                (name, row_id, res_type, res_id)
                for row_id, res_type, res_id in zip(
                    table[key].to_pylist(),
                    table["_res_type"].to_pylist(),
                    table["_res_id"].to_pylist(),
                    strict=True,
                )
            )
            tables[name] = table.select(list(TABLES[name].column_names))
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
        local: dict[tuple[str, str], int] = {}
        for number, key in enumerate(sorted(self._unknown)):
            local[key] = LOCAL_CONCEPT_START + number
            for column, position in self._unknown[key]:
                column[position] = local[key]
        return local

    def _table(self, name: str, kept: set[str]) -> pa.Table:
        cdm: CdmTable = TABLES[name]
        columns = self._columns[name]
        arrays = {c: pa.array(columns[c], ARROW_TYPES[kind]) for c, kind in cdm.columns}
        for helper in _HELPERS:
            arrays[helper] = pa.array(
                columns[helper], pa.date32() if helper == "_sort_date" else pa.string()
            )
        table = pa.table(arrays)
        table = table.filter(pc.is_in(table["_patient"], pa.array(sorted(kept), pa.string())))
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

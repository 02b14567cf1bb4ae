"""The staging step on its own: one keyed hash per person, opt-outs asked once per new person,
people without a Patient resource left out, dates generalised as whole columns exactly as one at
a time, and the garbage collector given back as it was after the read."""

from __future__ import annotations

import gc
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carnet.hub.omop.service import collector_paused
from carnet.hub.omop.spec import DateHandling
from carnet.hub.omop.staging import Stager, generalised_dates, generalised_moments
from carnet.hub.omop.vocabulary import Vocabulary


@dataclass(frozen=True)
class Fake:
    res_type: str
    res_id: str
    patient_id: str | None
    body: dict[str, Any] | None


class CountingPseudonyms:
    def __init__(self) -> None:
        self.hashed: list[str] = []

    def person_id(self, patient_id: str) -> int:
        self.hashed.append(patient_id)
        return 1000 + int(patient_id[1:])

    def shift_days(self, patient_id: str) -> int:
        return 3


def _observation(pid: str, n: int) -> Fake:
    body = {
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]},
        "effectiveDateTime": "2022-01-01",
        "valueQuantity": {"value": n},
    }
    return Fake("Observation", f"o-{pid}-{n}", pid, body)


def test_each_person_is_hashed_once_and_asked_about_once(tmp_path: Path) -> None:
    pseudonyms = CountingPseudonyms()
    asked: list[set[str]] = []

    def opted_out(ids: Collection[str]) -> set[str]:
        asked.append(set(ids))
        return {"p2"} & set(ids)

    stager = Stager(pseudonyms, Vocabulary(), "exact", opted_out)
    for _ in range(3):  # three batches of the same people
        stager.add(
            [Fake("Patient", p, p, {"gender": "female"}) for p in ("p1", "p2")]
            + [_observation(p, n) for p in ("p1", "p2", "p3") for n in range(4)]
        )
    staged = stager.finish(tmp_path)
    assert sorted(pseudonyms.hashed) == ["p1", "p3"]  # p2 opted out: never hashed
    assert asked == [{"p1", "p2", "p3"}]
    assert staged.persons == {"p1": 1001}  # p3 has no Patient: not in the extract
    assert staged.excluded_opted_out == 1
    measured = pq.read_table(staged.files["measurement"]).to_pydict()
    assert set(measured["person_id"]) == {1001}


@settings(max_examples=50, deadline=None)
@given(
    days=st.lists(
        st.one_of(st.none(), st.dates(date(1900, 1, 1), date(2100, 12, 31))), max_size=20
    ),
    shift=st.integers(-182, 182),
    dates=st.sampled_from(["exact", "shift", "month", "year"]),
)
def test_dates_are_generalised_as_whole_columns_like_one_at_a_time(
    days: list[date | None], shift: int, dates: DateHandling
) -> None:
    shifts = pa.array([shift] * len(days), pa.int32())
    moments = [None if d is None else datetime(d.year, d.month, d.day, 8, 30) for d in days]

    def one(day: date | None) -> date | None:
        if day is None or dates == "exact":
            return day
        if dates == "shift":
            return day + timedelta(days=shift)
        return day.replace(day=1) if dates == "month" else day.replace(month=1, day=1)

    def one_moment(moment: datetime | None) -> datetime | None:
        if moment is None or dates == "exact":
            return moment
        return moment + timedelta(days=shift) if dates == "shift" else None

    got = generalised_dates(pa.array(days, pa.date32()), shifts, dates).to_pylist()
    assert got == [one(d) for d in days]
    got_moments = generalised_moments(pa.array(moments, pa.timestamp("us")), shifts, dates)
    assert got_moments.to_pylist() == [one_moment(m) for m in moments]


def test_the_collector_is_restored_after_a_read_even_a_failed_one() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("the read failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()

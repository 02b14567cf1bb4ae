"""The staging step on its own: one keyed hash per person, opt-outs asked once per new person,
people without a Patient resource left out."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from carnet.hub.omop.staging import Stager
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

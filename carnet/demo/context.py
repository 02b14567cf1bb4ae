"""The mutable per-patient state shared by the clinical, document and patient builders."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime

from carnet.demo.dates import format_datetime
from carnet.demo.directory import Directory
from carnet.demo.fhir_builders import JSON, ref, resource_id


@dataclass
class PatientContext:
    """Mutable state while building one patient's bundle."""

    seed: int
    index: int
    rng: random.Random
    directory: Directory
    patient_id: str
    department: str
    birth: date
    gender: str
    adult_height: float
    bmi: float
    resources: list[JSON] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def new_id(self, kind: str) -> str:
        number = self.counters.get(kind, 0)
        self.counters[kind] = number + 1
        return resource_id(self.seed, f"{self.index}:{kind}:{number}")

    def when(self, moment: datetime) -> str:
        return format_datetime(moment, self.department)

    @property
    def subject(self) -> JSON:
        return ref("Patient", self.patient_id)

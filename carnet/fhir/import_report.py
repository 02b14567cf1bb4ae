"""The import report: what was read, stored, skipped, and each rejection with a reason that
names the issue code and the path of the value at fault, never the value (``safe_reason``)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from carnet.fhir.errors import FhirError

MAX_REJECTIONS = 1000  # kept with their reasons; beyond, only counted (memory stays flat)


@dataclass
class Rejection:
    """One resource (or file) set aside; ``reason`` never quotes the data (see ``safe_reason``)."""

    source: str  # file name and location inside it
    status: int
    reason: str

    @classmethod
    def of(cls, source: str, err: FhirError) -> Rejection:
        return cls(source, err.status, safe_reason((i.code, i.expression) for i in err.issues))


_NOT_IN_A_PATH = re.compile(r"[^A-Za-z0-9_.\[\]]")
MAX_REASON_ISSUES = 5


def safe_reason(issues: Iterable[tuple[str, str]]) -> str:
    """Each issue as its code and the path of the value at fault (``value: Patient.birthDate``).

    Never the diagnostics: they quote the rejected value (a date, a name, an INS), and reports
    and logs carry no clinical content.
    """
    parts = []
    for code, expression in itertools.islice(issues, MAX_REASON_ISSUES):
        path = _NOT_IN_A_PATH.sub("", expression)[:200]
        parts.append(f"{code}: {path}" if path else code)
    return "; ".join(parts) or "invalid"


@dataclass
class ImportReport:
    files: int = 0
    read: int = 0
    stored: int = 0
    skipped: int = 0  # lines or files committed by an earlier run, not read again
    rejected: list[Rejection] = field(default_factory=list)
    rejected_total: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def count(self, res_type: str, n: int = 1) -> None:
        self.stored += n
        self.by_type[res_type] = self.by_type.get(res_type, 0) + n

    def reject(self, rejection: Rejection) -> None:
        self.rejected_total += 1
        if len(self.rejected) < MAX_REJECTIONS:
            self.rejected.append(rejection)


__all__ = ["MAX_REJECTIONS", "ImportReport", "Rejection", "safe_reason"]

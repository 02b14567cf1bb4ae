"""The automatic gates every output passes before a checker sees it (OpenSAFELY's "file checks"):
an allowed file type, a size and a row limit, and no column that names a person.

The gates look at the file itself, whatever produced it; a failed gate stops the request with the
reasons (ids and limits only, never the file's content).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import PurePath

from carnet.hub.disclosure.profiles import PATIENT_ID_COLUMNS, DisclosureProfile


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: tuple[str, ...]


def _identifying(header: list[str]) -> list[str]:
    normalised = [name.strip().lower() for name in header]
    return [
        name for name in normalised if name in PATIENT_ID_COLUMNS or name.endswith("_person_id")
    ]


def check_file(name: str, content: bytes, profile: DisclosureProfile) -> GateResult:
    """Whether a file may go on to the checkers: its type, size, rows and columns."""
    reasons: list[str] = []
    suffix = PurePath(name).suffix.lower()
    if suffix not in profile.allowed_types:
        reasons.append(f"file type {suffix or '(none)'} is not allowed")
    if len(content) > profile.max_bytes:
        reasons.append(f"file is larger than {profile.max_bytes} bytes")
        return GateResult(False, tuple(reasons))  # an oversized file is not parsed at all
    if suffix == ".csv":
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            return GateResult(False, (*reasons, "a CSV output is UTF-8 text"))
        try:
            rows = list(csv.reader(io.StringIO(text)))
        except csv.Error:
            return GateResult(False, (*reasons, "the CSV output does not parse"))
        if rows:
            found = _identifying(rows[0])
            if found:
                reasons.append("a column names a person: " + ", ".join(sorted(set(found))))
        if max(len(rows) - 1, 0) > profile.max_rows:
            reasons.append(f"more than {profile.max_rows} rows")
    return GateResult(not reasons, tuple(reasons))


def check_columns(columns: list[str]) -> GateResult:
    """The gate on a table request's own columns: none of them names a person."""
    found = _identifying(columns)
    if found:
        return GateResult(False, ("a column names a person: " + ", ".join(sorted(set(found))),))
    return GateResult(True, ())

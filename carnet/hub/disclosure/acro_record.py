"""The record of each output in ACRO's ``results.json`` format (as ACRO 1.0.2 writes it), so output
checkers can open a release request in SACRO-Viewer.

One ``results`` entry per output: its status (``pass``, ``review``, ``fail``), type, the method
and mitigation, the files with, per check, how many cells failed it and their [row, column]
positions, the per-cell outcome (``ok`` or the failed checks), a summary, the time and the
checkers' comments. Only the released table's file is named; the true counts never are.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carnet.hub.disclosure.tables import ControlledTable

RESULTS_FORMAT_VERSION = "1.0.2"  # the ACRO release whose results.json this follows
RESULTS_FILE = "results.json"
STATBARN_CONTEXT = "https://w3id.org/statbarnsdc#"
# the SACRO statistical barn of each statistic (ACRO's statbarns.json)
STATBARNS = {"count": "Frequencies", "sum": "LinearAggregations", "mean": "LinearAggregations"}


def table_outcome(table: ControlledTable) -> dict[str, dict[str, str]]:
    """ACRO's outcome frame as JSON: column -> row -> ``ok`` or ``Check; Check; ``."""
    outcome: dict[str, dict[str, str]] = {c: {} for c in table.column_levels}
    for cell in table.cells:
        failed = [name for name in table.checks if name in cell.failed]
        outcome[cell.column][cell.row] = "".join(f"{name}; " for name in failed) or "ok"
    return outcome


def output_entry(
    uid: str,
    table: ControlledTable,
    file_name: str,
    *,
    comments: list[str] | None = None,
    moment: datetime | None = None,
) -> dict[str, Any]:
    """One output's entry in ``results``."""
    cells = {check: _positions(table, check) for check in table.checks}
    failed_counts = {check: len(positions) for check, positions in cells.items()}
    lines = [
        f"{check}: fail - {count} cells suppressed."
        for check, count in failed_counts.items()
        if count
    ]
    return {
        "uid": uid,
        "status": table.status,
        "type": "table",
        "properties": {
            "method": "crosstab",
            "mitigation": f"suppression then {table.profile.rounding} rounding"
            if table.suppressed
            else "none",
            "profile": table.profile.name,
        },
        "files": [{"name": file_name, "sdc": {"summary": failed_counts, "cells": cells}}],
        "outcome": table_outcome(table),
        "command": f"{table.request.statistic} by {table.request.rows}"
        + (f" x {table.request.columns}" if table.request.columns else ""),
        "summary": "; ".join(lines) or "pass",
        "timestamp": (moment or datetime.now(UTC)).isoformat(),
        "comments": list(comments or []),
        "exception": "",
        "fair": _fair(table, failed_counts),
    }


def _fair(table: ControlledTable, failed_counts: dict[str, int]) -> dict[str, Any]:
    """The FAIR description ACRO 1.0.2 gives each output (its SACRO statistical barn)."""
    request = table.request
    return {
        "context": STATBARN_CONTEXT,
        "statbarn": STATBARNS[request.statistic],
        "checks_needed": list(table.checks),
        "check_status": {c: "fail" if n else "pass" for c, n in failed_counts.items()},
        "dependent": request.value or "unknown",
        "independent": [name for name in (request.rows, request.columns) if name],
    }


def _positions(table: ControlledTable, check: str) -> list[list[int]]:
    return [
        [i, j]
        for i, row in enumerate(table.mask(check))
        for j, flagged in enumerate(row)
        if flagged
    ]


def results_document(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The whole ``results.json``: the tool that wrote it and every output."""
    return {
        "version": RESULTS_FORMAT_VERSION,
        "tool": {"@type": "SoftwareApplication", "name": "Carnet output control"},
        "results": entries,
    }


def write_bundle(folder: Path, document: dict[str, Any], files: dict[str, bytes]) -> Path:
    """Write ``results.json`` and the output files it names into ``folder`` (the directory an
    output checker opens in SACRO-Viewer, or reads with ``acro.record.load_records``). Each
    file is replaced whole, so a reader never sees half of one."""
    folder.mkdir(parents=True, exist_ok=True)
    contents = {**files, RESULTS_FILE: json.dumps(document, indent=4).encode()}
    for name, content in contents.items():
        if Path(name).name != name:
            raise ValueError("an output file is named without a folder")
        partial = folder / f".{name}.partial"
        partial.write_bytes(content)
        partial.replace(folder / name)
    return folder / RESULTS_FILE

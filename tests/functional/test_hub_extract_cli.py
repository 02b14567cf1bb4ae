"""`carnet hub extract` and `carnet hub rekey`: one clear line per outcome, non-zero on failure."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import Result

from tests.support.cli import invoke
from tests.support.migrated_store import SqliteTemplate


def _run(data_dir: Path, *args: str) -> Result:
    env = {"CARNET_DATA_DIR": str(data_dir), "CARNET_DATABASE_URL": "", "COLUMNS": "200"}
    return invoke(args, env=env, catch_exceptions=False)


def test_hub_extract_writes_an_extract_and_rekey_bumps_the_generation(
    tmp_path: Path, migrated_sqlite: SqliteTemplate
) -> None:
    data = tmp_path / "data"
    migrated_sqlite.copy_into(data)
    out = tmp_path / "out"
    done = _run(
        data,
        "hub",
        "extract",
        "--project",
        "p1",
        "--permit",
        "x1",
        "--out",
        str(out),
        "--tables",
        "person,measurement",
        "--k",
        "1",
    )
    assert done.exit_code == 0, done.output
    assert "hash" in done.output and (out / "p1.duckdb").exists()
    assert json.loads((out / "extraction.json").read_text())["permit_id"] == "x1"
    rekeyed = _run(data, "hub", "rekey", "--project", "p1")
    assert rekeyed.exit_code == 0 and "generation 2" in rekeyed.output


def test_hub_extract_refuses_an_unknown_table_in_one_line(
    tmp_path: Path, migrated_sqlite: SqliteTemplate
) -> None:
    data = tmp_path / "data"
    migrated_sqlite.copy_into(data)
    done = _run(
        data,
        "hub",
        "extract",
        "--project",
        "p1",
        "--permit",
        "x1",
        "--out",
        str(tmp_path / "out"),
        "--tables",
        "person,note_nlp",
    )
    assert done.exit_code == 1
    assert "unknown OMOP tables" in done.output and "Traceback" not in done.output
    assert not (tmp_path / "out").exists()

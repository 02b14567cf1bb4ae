"""`carnet identity ...`: the vigilance queue and its actions from the command line."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import Result

from carnet.app import build_services
from carnet.demo.population import generate_population
from carnet.demo.register import demo_register
from carnet.identity.engines import SparkEngine
from carnet.identity.ins import Traits
from carnet.identity.models import identity
from carnet.identity.service import IdentityInput
from tests.conftest import make_settings
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.cli import invoke
from tests.support.forkserver import ForkServer
from tests.support.migrated_store import SqliteTemplate
from tests.support.spark import small_data_jvm_env

ROOT = Path(__file__).resolve().parents[2]
JEAN = Traits.create("Dupont", ["Jean"], "1985-07-04", "M", "75056")


def _run(data_dir: Path, *args: str) -> Result:
    env = {"CARNET_DATA_DIR": str(data_dir), "CARNET_DATABASE_URL": "", "COLUMNS": "250"}
    return invoke(args, env=env, catch_exceptions=False)


def _run_in_a_new_process(
    forks: ForkServer, data_dir: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """``python -m carnet *args`` in a process of its own (forked from the worker's fork server,
    which has carnet imported and no Spark session)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
    env |= {"CARNET_DATA_DIR": str(data_dir), "CARNET_DATABASE_URL": "", "PYTHONPATH": str(ROOT)}
    out, err = data_dir.parent / "forked.out", data_dir.parent / "forked.err"
    child = forks.start("carnet", list(args), env=small_data_jvm_env(env), stdout=out, stderr=err)
    try:
        returncode = child.wait(timeout=300)
    except subprocess.TimeoutExpired:
        child.kill()
        raise
    return subprocess.CompletedProcess(args, returncode, out.read_text(), err.read_text())


@pytest.mark.slow  # Spark through the CLI (the session-wide JVM), and one that fails to start
def test_identity_commands(
    tmp_path: Path, spark: SparkEngine, migrated_sqlite: SqliteTemplate, forks: ForkServer
) -> None:
    data = tmp_path / "data"
    migrated_sqlite.copy_into(data)  # a migrated store: the commands are the point, not migrating
    assert "fewer than 2 identities" in _run(data, "identity", "train").output
    services = build_services(make_settings(data))
    first = services.identity.resolve(IdentityInput(JEAN), ctx=AS_LOCAL_OPERATOR)
    twin = services.identity.resolve(
        IdentityInput(replace(JEAN, given_names=("PIERRE",))), ctx=AS_LOCAL_OPERATOR
    )
    services.close()
    queue = _run(data, "identity", "queue")
    assert queue.exit_code == 0
    assert f"{twin.item_id}  duplicate" in queue.output
    assert "given_names=else" in queue.output
    assert "1 open item(s)" in queue.output
    merged = _run(data, "identity", "merge", str(twin.item_id))
    assert merged.exit_code == 0, merged.output
    assert f"replaced by {first.identity_id}" in merged.output
    merge_id = merged.output.split()[1].rstrip(":")
    again = _run(data, "identity", "merge", str(twin.item_id))
    assert again.exit_code == 1
    assert "already merged" in again.output
    assert _run(data, "identity", "unmerge", merge_id).exit_code == 0
    assert "was already undone" in _run(data, "identity", "unmerge", merge_id).output
    assert "is not known" in _run(data, "identity", "dismiss", "nope").output
    trained = _run(data, "identity", "train", "--random-pairs", "100")
    assert "trained on 2 identities" in trained.output
    dedupe = _run(data, "identity", "dedupe")
    assert "0 above the link threshold" in dedupe.output  # twins are never linked
    on_spark = _run(data, "identity", "dedupe", "--engine", "spark", "--spark-master", "local[1]")
    assert on_spark.exit_code == 0, on_spark.output
    assert "0 above the link threshold (engine spark)" in on_spark.output
    # In a process of its own: in this one, Spark would hand back the session already running.
    nowhere = _run_in_a_new_process(
        forks, data, "identity", "dedupe", "--engine", "spark", "--spark-master", "nope://x"
    )
    assert nowhere.returncode == 1
    assert "cannot start Spark at nope://x" in nowhere.stdout + nowhere.stderr
    unknown = _run(data, "identity", "dedupe", "--engine", "hadoop")
    assert unknown.exit_code == 1
    assert "choose one of duckdb, spark" in unknown.output


def test_demo_loads_the_identity_register(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = _run(data, "demo", "--patients", "2", "--no-serve")
    assert done.exit_code == 0, done.output
    assert "identity register: 2 reference identities" in done.output
    services = build_services(make_settings(data))
    try:
        register = services.identity.register
        assert register is not None
        for person in demo_register(2).records():
            assert register.verify(person.ins, person.traits)
        # The demo Patients went through matching: each has its identity in the index.
        ids = [
            e["resource"]["id"]
            for bundle in generate_population(2)
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Patient"
        ]
        with services.engine.connect() as conn:
            indexed = set(conn.execute(select(identity.c.patient_id)).scalars())
        assert set(ids) <= indexed
    finally:
        services.close()

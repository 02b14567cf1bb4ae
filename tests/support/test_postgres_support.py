"""Self-test of the throwaway PostgreSQL cluster used by the database tests."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from tests.support.postgres import ThrowawayPostgres

pytestmark = pytest.mark.postgres


def test_throwaway_postgres_round_trip(capsys: pytest.CaptureFixture[str]) -> None:
    began = time.monotonic()
    with ThrowawayPostgres() as pg:
        startup = time.monotonic() - began
        assert pg.tmpdir is not None
        tmpdir = pg.tmpdir
        assert pg.datadir.is_dir()
        assert pg.url == f"postgresql+psycopg://carnet@127.0.0.1:{pg.port}/carnet"

        engine = sa.create_engine(pg.url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE note (id int PRIMARY KEY, body text)"))
                conn.execute(
                    sa.text("INSERT INTO note (id, body) VALUES (:id, :body)"),
                    {"id": 1, "body": "Bonjour, café ☕"},
                )
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT body FROM note WHERE id = 1")).scalar_one() == (
                    "Bonjour, café ☕"
                )
                assert conn.execute(sa.text("SHOW listen_addresses")).scalar_one() == "127.0.0.1"
                assert conn.execute(sa.text("SHOW fsync")).scalar_one() == "off"
                assert conn.execute(sa.text("SHOW server_encoding")).scalar_one() == "UTF8"
                assert conn.execute(sa.text("SELECT current_user")).scalar_one() == "carnet"
        finally:
            engine.dispose()

        other_url = pg.create_database("carnet_extra")
        assert other_url.endswith(f":{pg.port}/carnet_extra")
        other = sa.create_engine(other_url)
        try:
            with other.connect() as conn:
                assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == (
                    "carnet_extra"
                )
        finally:
            other.dispose()

    assert not tmpdir.exists()
    assert pg.tmpdir is None
    with capsys.disabled():
        print(f"\nthrowaway PostgreSQL start-up: {startup:.2f} s")

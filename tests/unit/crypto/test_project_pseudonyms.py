"""Per-project pseudonym keys: random per project, wrapped by the master key, replaced by a re-key."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, select

from carnet.crypto.keyring import FileKeyring
from carnet.crypto.models import project_key
from carnet.crypto.pseudonyms import PSEUDONYM_MAX, SHIFT_MAX_DAYS, ProjectKeys, ProjectPseudonyms
from carnet.db.metadata import metadata


def _keys(tmp_path: Path) -> tuple[ProjectKeys, Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'keys.sqlite3'}")
    metadata.create_all(engine, tables=[project_key])
    return ProjectKeys(FileKeyring(tmp_path / "master.key")), engine


def test_pseudonyms_are_stable_positive_and_unrelated_across_keys() -> None:
    one = ProjectPseudonyms("p", 1, b"\x01" * 32)
    two = ProjectPseudonyms("p", 1, b"\x02" * 32)
    ids = [one.person_id(f"patient-{i}") for i in range(200)]
    assert ids == [one.person_id(f"patient-{i}") for i in range(200)]
    assert all(0 < i <= PSEUDONYM_MAX for i in ids)
    assert len(set(ids)) == 200
    assert not set(ids) & {two.person_id(f"patient-{i}") for i in range(200)}


def test_date_shift_is_never_zero_and_within_half_a_year() -> None:
    shifts = [ProjectPseudonyms("p", 1, b"\x03" * 32).shift_days(f"x{i}") for i in range(500)]
    assert all(0 < abs(s) <= SHIFT_MAX_DAYS for s in shifts)
    assert min(shifts) < 0 < max(shifts)


def test_project_key_is_stored_wrapped_and_replaced_by_a_rekey(tmp_path: Path) -> None:
    keys, engine = _keys(tmp_path)
    with engine.begin() as conn:
        first = keys.pseudonyms(conn, "project-a").person_id("patient-1")
        assert keys.pseudonyms(conn, "project-a").person_id("patient-1") == first
        other = keys.pseudonyms(conn, "project-b").person_id("patient-1")
        wrapped = conn.execute(select(project_key.c.wrapped)).scalars().all()
        assert keys.rekey(conn, "project-a") == 2
        after = keys.pseudonyms(conn, "project-a")
    assert other != first
    assert after.generation == 2 and after.person_id("patient-1") != first
    assert all(len(w) == 12 + 32 + 16 for w in wrapped)  # nonce, key, tag: never the key alone

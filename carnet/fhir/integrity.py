"""Integrity views of a whole store for the operator's backups and drills: a digest over every
stored body and the count of bodies that still decrypt. They read resource rows, so they live in
the FHIR engine; nothing they return carries clinical content."""

from __future__ import annotations

import hashlib

from sqlalchemy import Engine

from carnet.fhir.repository import Repository, Unit
from carnet.fhir.store_scan import iter_current, raw_bodies


def unit_digest(unit: Unit) -> tuple[int, str]:
    """How many resource versions a unit's database holds and a SHA-256 over every stored body."""
    rows: list[bytes] = []
    for res_type, res_id, version, body in raw_bodies(unit):
        body_hash = hashlib.sha256(body or b"").hexdigest()
        rows.append(f"{res_type}/{res_id}/{version}:{body_hash}".encode())
    rows.sort()
    return len(rows), hashlib.sha256(b"\n".join(rows)).hexdigest()


def resources_digest(repository: Repository, engine: Engine) -> tuple[int, str]:
    """:func:`unit_digest` of the database behind ``engine``."""
    view = Repository(engine, repository.data_keys, repository.indexer, repository.blobs)
    with view.unit(write=False) as unit:
        return unit_digest(unit)


def readable_current_bodies(repository: Repository) -> int:
    """How many current resources of ``repository`` decrypt (a shredded patient's do not)."""
    readable = 0
    with repository.unit(write=False) as unit:
        for batch in iter_current(unit):  # decrypts every body; shredded ones are skipped
            readable += len(batch)
    return readable

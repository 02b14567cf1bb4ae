"""The database domain's wiring: the engine, migrated, from the settings it reads."""

from __future__ import annotations

from sqlalchemy import Engine

from carnet.db.engine import make_engine
from carnet.db.maintenance import analyze_if_missing
from carnet.db.migrate import upgrade
from carnet.private_files import private_dir
from carnet.settings import Settings


def build(settings: Settings, *, migrate: bool = True) -> Engine:
    """Open the database (private data and blob directories first), applying migrations."""
    private_dir(settings.data_dir)
    private_dir(settings.blob_dir)
    engine = make_engine(
        settings.database_url,
        sqlite_cache_mib=settings.sqlite_cache_mib,
        lock_timeout_seconds=settings.write_lock_seconds,
    )
    if migrate:
        upgrade(engine)
        analyze_if_missing(engine)
    return engine

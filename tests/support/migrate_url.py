"""Migrate the database at a URL to the last revision, then print ``migrated``:
``python -m tests.support.migrate_url URL`` (tests/unit/db/test_migrations_are_atomic.py kills it
midway)."""

from __future__ import annotations

import sys

from carnet.db.engine import make_engine
from carnet.db.migrate import upgrade

if __name__ == "__main__":
    upgrade(make_engine(sys.argv[1]))
    print("migrated", flush=True)

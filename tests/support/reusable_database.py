"""A PostgreSQL database cloned once from the migrated template and put back into the template's
exact state between the tests that borrow it (tests/support/migrated_store.py lends them).

Cloning a database costs about 0.4 s; putting one back costs a few milliseconds, because only what
a test can change is looked at and only what it changed is undone:

- rows: every table whose files grew or changed since the template (table, indexes and TOAST,
  ``pg_total_relation_size``) is emptied with ``TRUNCATE`` (with every table whose foreign keys
  point at it), and the rows the template holds (the default access rules, the migration version)
  are copied back from a binary ``COPY`` taken of the template;
- sequences go back to the template's values, used or not;
- planner statistics: ``TRUNCATE`` marks a table as never analysed, so each relation's
  ``relpages``/``reltuples``/``relallvisible`` are written back to the template's values;
- anything else (a table, index, function or type created or dropped, column statistics from an
  ``ANALYZE``, a large object) changes a fingerprint of the catalogues: the database is then dropped
  and cloned again, so a test that changes the schema costs a clone but never leaks into the next.

``TemplateState.of`` reads the same things from any database; tests/support/test_migrated_store.py
compares a reset database with the template through it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from tests.support.postgres import ThrowawayPostgres

# Catalogues a test's DDL, ANALYZE or large objects change. Counted with their rows' creating
# transactions: an update rewrites a row with a new xmin, a drop removes it.
_FINGERPRINT = """
SELECT string_agg(fingerprint, ' ' ORDER BY fingerprint) FROM (
    SELECT 'class' || count(*) || ':' || sum(xmin::text::bigint) AS fingerprint FROM pg_class
    UNION ALL SELECT 'attribute' || count(*) || ':' || sum(xmin::text::bigint) FROM pg_attribute
    UNION ALL SELECT 'statistic' || count(*) || ':' || sum(xmin::text::bigint) FROM pg_statistic
    UNION ALL SELECT 'ext' || count(*) || ':' || sum(xmin::text::bigint) FROM pg_statistic_ext
    UNION ALL SELECT 'proc' || count(*) || ':' || sum(xmin::text::bigint) FROM pg_proc
    UNION ALL SELECT 'type' || count(*) || ':' || sum(xmin::text::bigint) FROM pg_type
    UNION ALL SELECT 'constraint' || count(*) || ':' || sum(xmin::text::bigint) FROM pg_constraint
    UNION ALL SELECT 'trigger' || count(*) || ':' || sum(xmin::text::bigint) FROM pg_trigger
    UNION ALL SELECT 'namespace' || count(*) || ':' || sum(xmin::text::bigint) FROM pg_namespace
    UNION ALL SELECT 'extension' || count(*) || ':' || sum(xmin::text::bigint) FROM pg_extension
    UNION ALL SELECT 'policy' || count(*) || ':' || sum(xmin::text::bigint) FROM pg_policy
    UNION ALL SELECT 'lo' || count(*) || ':' || sum(xmin::text::bigint) FROM pg_largeobject_metadata
    UNION ALL SELECT 'settings' || count(*) || ':' || sum(xmin::text::bigint) FROM pg_db_role_setting
        WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
    UNION ALL SELECT 'publication' || count(*) FROM pg_publication
) AS parts
"""
# What the catalogues say, without when they said it: equal for two databases with the same schema,
# column statistics and large objects (the fingerprint above is not, once a table was truncated).
_SCHEMA = """
SELECT md5(string_agg(line, E'\\n' ORDER BY line)) FROM (
    SELECT format('class %s %s %s %s', oid, relname, relkind, relnatts) AS line FROM pg_class
    UNION ALL SELECT format('column %s %s %s %s %s %s', attrelid, attname, atttypid, attnotnull,
                            atthasdef, attisdropped) FROM pg_attribute
    UNION ALL SELECT format('constraint %s %s %s', conrelid, conname, pg_get_constraintdef(oid))
        FROM pg_constraint
    UNION ALL SELECT format('index %s', pg_get_indexdef(indexrelid)) FROM pg_index
    UNION ALL SELECT format('statistic %s', s::text) FROM pg_statistic AS s
    UNION ALL SELECT format('function %s %s', oid, proname) FROM pg_proc
    UNION ALL SELECT format('type %s %s', oid, typname) FROM pg_type
    UNION ALL SELECT format('trigger %s %s', tgrelid, tgname) FROM pg_trigger
    UNION ALL SELECT format('large object %s', oid) FROM pg_largeobject_metadata
    UNION ALL SELECT format('setting %s', setconfig) FROM pg_db_role_setting
        WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
) AS lines
"""
_USER_TABLES = """
SELECT c.oid, format('%I.%I', n.nspname, c.relname), pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 2
"""
_REFERENCES = """
SELECT conrelid, confrelid FROM pg_constraint WHERE contype = 'f' AND conrelid <> confrelid
"""
_SEQUENCES = (
    "SELECT format('%I.%I', schemaname, sequencename), last_value, start_value FROM pg_sequences"
)
_RELATION_STATS = """
SELECT oid, relpages, reltuples, relallvisible FROM pg_class WHERE oid >= 16384 ORDER BY oid
"""
_RESTORE_RELATION_STATS = """
UPDATE pg_class AS c
SET relpages = v.relpages, reltuples = v.reltuples, relallvisible = v.relallvisible
FROM unnest(%s::oid[], %s::int[], %s::real[], %s::int[]) AS v(oid, relpages, reltuples, relallvisible)
WHERE c.oid = v.oid
  AND (c.relpages, c.reltuples, c.relallvisible)
      IS DISTINCT FROM (v.relpages, v.reltuples, v.relallvisible)
"""
_OTHER_SESSIONS = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""
_OTHER_SESSIONS_LEFT = """
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
"""
_SESSIONS_GONE_TIMEOUT = 10.0


def _content_digest(conn: psycopg.Connection[Any], table: str) -> str:
    query = sql.SQL("SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {} t")
    row = conn.execute(query.format(sql.SQL(table))).fetchone()
    assert row is not None
    return str(row[0])


@dataclass(frozen=True)
class TemplateState:
    """What a reset puts back, read once from the template (its clones share its object ids)."""

    fingerprint: str = field(compare=False)  # changes with every reset: compare ``schema``
    schema: str
    table_sizes: dict[str, int]  # qualified name -> pg_total_relation_size
    table_oids: dict[str, int]
    referenced_by: dict[str, set[str]]  # table -> tables whose foreign keys point at it
    rows: dict[str, bytes]  # non-empty tables -> their rows, binary COPY
    digests: dict[str, str]  # non-empty tables -> digest of their rows
    sequences: dict[str, tuple[int | None, int]]  # name -> (last_value or None if unused, start)
    relation_stats: list[tuple[int, int, float, int]]  # (oid, relpages, reltuples, relallvisible)

    @classmethod
    def read(cls, cluster: ThrowawayPostgres, database: str) -> TemplateState:
        with cluster.connect(database) as conn:
            return cls.of(conn, with_rows=True)

    @classmethod
    def of(cls, conn: psycopg.Connection[Any], *, with_rows: bool = False) -> TemplateState:
        """The state of the database ``conn`` is connected to (``with_rows``: its rows' bytes)."""
        tables = conn.execute(_USER_TABLES).fetchall()
        names = {oid: name for oid, name, _ in tables}
        referenced_by: dict[str, set[str]] = {name: set() for name in names.values()}
        for referencing, referenced in conn.execute(_REFERENCES).fetchall():
            if referencing in names and referenced in names:
                referenced_by[names[referenced]].add(names[referencing])
        rows: dict[str, bytes] = {}
        digests: dict[str, str] = {}
        for _, name, _ in tables:
            exists = sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.SQL(name))
            if conn.execute(exists).fetchone() != (True,):
                continue
            digests[name] = _content_digest(conn, name)
            if with_rows:
                copy_out = sql.SQL("COPY {} TO STDOUT (FORMAT BINARY)").format(sql.SQL(name))
                with conn.cursor().copy(copy_out) as copy:
                    rows[name] = b"".join(bytes(chunk) for chunk in copy)
        return cls(
            fingerprint=_fingerprint(conn),
            schema=str(_one(conn, _SCHEMA)),
            table_sizes={name: size for _, name, size in tables},
            table_oids={name: oid for oid, name, _ in tables},
            referenced_by=referenced_by,
            rows=rows,
            digests=digests,
            sequences={
                name: (last, start) for name, last, start in conn.execute(_SEQUENCES).fetchall()
            },
            relation_stats=[tuple(row) for row in conn.execute(_RELATION_STATS).fetchall()],  # type: ignore[misc]
        )


def _one(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def _fingerprint(conn: psycopg.Connection[Any]) -> str:
    return str(_one(conn, _FINGERPRINT))


class ReusableDatabase:
    """One clone of the template, lent to one test at a time and reset in between."""

    def __init__(
        self, cluster: ThrowawayPostgres, template_name: str, template: TemplateState, name: str
    ) -> None:
        self.cluster = cluster
        self.template_name = template_name
        self.template = template
        self.name = name
        self.clones = 0  # how many times it was (re)cloned: a schema change costs one more
        self.url = self._clone()

    def _clone(self) -> str:
        url = self.cluster.create_database(self.name, template=self.template_name)
        with self.cluster.connect(self.name) as conn:
            self.fingerprint = _fingerprint(conn)
        self.clones += 1
        return url

    def reset(self) -> None:
        """Put the database back into the template's state (see the module's docstring)."""
        with self.cluster.connect(self.name) as conn:
            self._end_other_sessions(conn)
            if _fingerprint(conn) != self.fingerprint:
                conn.close()
                self._clone_again()
                return
            with conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '20s'")
                truncated = self._reset_rows(conn)
                self._reset_sequences(conn)  # sequences are not in the catalogues' fingerprint
                stats = self.template.relation_stats
                restored = conn.execute(
                    _RESTORE_RELATION_STATS,
                    (
                        [oid for oid, _, _, _ in stats],
                        [pages for _, pages, _, _ in stats],
                        [tuples for _, _, tuples, _ in stats],
                        [visible for _, _, _, visible in stats],
                    ),
                )
            if truncated or restored.rowcount:  # they rewrote rows of pg_class
                self.fingerprint = _fingerprint(conn)

    def _end_other_sessions(self, conn: psycopg.Connection[Any]) -> None:
        """A session the last test left open (or autovacuum) could hold locks or be committing."""
        if not conn.execute(_OTHER_SESSIONS).fetchall():
            return
        deadline = time.monotonic() + _SESSIONS_GONE_TIMEOUT
        while conn.execute(_OTHER_SESSIONS_LEFT).fetchone() != (0,):
            if time.monotonic() > deadline:
                raise RuntimeError(f"sessions on {self.name} did not end after being terminated")
            time.sleep(0.01)

    def _reset_rows(self, conn: psycopg.Connection[Any]) -> bool:
        """Empty the tables that changed and copy their template rows back; whether any did."""
        template = self.template
        changed = {
            name
            for _, name, size in conn.execute(_USER_TABLES).fetchall()
            if size != template.table_sizes.get(name)
        }
        changed |= {
            name
            for name, digest in template.digests.items()
            if name not in changed and _content_digest(conn, name) != digest
        }
        if not changed:
            return False
        emptied: set[str] = set()
        pending = list(changed)
        while pending:  # TRUNCATE needs every table referencing an emptied one in the same list
            name = pending.pop()
            if name not in emptied:
                emptied.add(name)
                pending.extend(template.referenced_by.get(name, ()))
        truncate = sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
            sql.SQL(", ").join(sql.SQL(name) for name in sorted(emptied))
        )
        conn.execute(truncate)
        for name in sorted(emptied & template.rows.keys()):
            copy_in = sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(sql.SQL(name))
            with conn.cursor().copy(copy_in) as copy:
                copy.write(template.rows[name])
        return True

    def _reset_sequences(self, conn: psycopg.Connection[Any]) -> None:
        for name, last, _ in conn.execute(_SEQUENCES).fetchall():
            wanted_last, start = self.template.sequences[name]
            if last != wanted_last:
                value, called = (start, False) if wanted_last is None else (wanted_last, True)
                conn.execute("SELECT setval(%s::regclass, %s, %s)", (name, value, called))

    def _clone_again(self) -> None:
        with self.cluster.connect("postgres") as admin:
            admin.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(self.name))
            )
        self._clone()

"""The ONLY code that reads or writes resource rows and their index rows (with its read-only
whole-store scans in store_scan.py).

Bodies are encrypted before they reach the database and decrypted after they leave it. Writes are
buffered in a unit of work and flushed with executemany (before any read in the same unit, and at
commit), so a transaction of hundreds of entries costs a handful of statements per table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    bindparam,
    delete,
    func,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError

from carnet.crypto.envelope import DataKeys, KeyDestroyedError
from carnet.db.bulk import bulk_insert, insert_ignoring_duplicates, insert_rows
from carnet.db.engine import WRITE_OPTION
from carnet.fhir.attachments import BlobStore, attachments, strip_blob_markers
from carnet.fhir.dates import instant, sortable, utc_now
from carnet.fhir.errors import FhirError, conflict, gone
from carnet.fhir.history_query import history_versions
from carnet.fhir.indexer import KIND_COLUMNS, Indexer, IndexRows, Row
from carnet.fhir.models import INDEX_TABLES, code_text, resource


@dataclass(frozen=True)
class StoredResource:
    """One version of a resource as stored (body decrypted, attachments inflated on demand)."""

    res_type: str
    res_id: str
    version: int
    last_updated: str  # FHIR instant
    deleted: bool
    method: str
    patient_id: str | None
    body: dict[str, Any] | None

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


@dataclass
class _Pending:
    row: dict[str, Any]
    index: IndexRows
    existed_in_db: bool
    stored: StoredResource


# Built once: constructing a select per read cost more than running it (an import's updates).
_CURRENT = select(resource).where(
    resource.c.res_type == bindparam("res_type"),
    resource.c.res_id == bindparam("res_id"),
    resource.c.current,
)


class Repository:
    """Versioned, encrypted, indexed storage of FHIR resources."""

    def __init__(
        self, engine: Engine, data_keys: DataKeys, indexer: Indexer, blobs: BlobStore
    ) -> None:
        self.engine = engine
        self.data_keys = data_keys
        self.indexer = indexer
        self.blobs = blobs
        self.known_code_texts: set[tuple[str, str, str]] = set()

    @contextmanager
    def unit(self, *, write: bool = True) -> Iterator[Unit]:
        """One database transaction: everything in it commits or nothing does."""
        with self.engine.connect() as raw:
            conn = raw.execution_options(**{WRITE_OPTION: write})
            unit = Unit(self, conn)
            conn.begin()
            try:
                yield unit
                unit.flush()
                for callback in unit.before_commit:
                    callback(conn)
                conn.commit()
                self.known_code_texts |= unit.new_code_texts  # only once they are committed
            except IntegrityError as exc:
                conn.rollback()
                self.data_keys.after_rollback(conn)
                raise conflict("a concurrent write changed this resource; retry") from exc
            except BaseException:
                conn.rollback()
                self.data_keys.after_rollback(conn)
                raise
            self.data_keys.after_commit(conn)


class Unit:
    """Reads and buffered writes inside one transaction."""

    def __init__(self, repo: Repository, conn: Connection) -> None:
        self.repo = repo
        self.conn = conn
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._superseded: list[tuple[str, str]] = []
        self._rows: list[dict[str, Any]] = []
        self._read: dict[tuple[str, str], StoredResource | None] = {}
        """Current versions read ahead by ``prefetch_current`` (a write replaces its entry)."""
        self.new_code_texts: set[tuple[str, str, str]] = set()
        self.before_commit: list[Callable[[Connection], None]] = []
        """Callbacks run (in order) after the final flush, inside the transaction: audit appends."""

    # -- writes ---------------------------------------------------------------------------------

    def write(
        self,
        res_type: str,
        res_id: str,
        body: dict[str, Any] | None,
        *,
        method: str,
        previous: StoredResource | None,
        known_new: bool = False,
    ) -> StoredResource:
        """Store a new version (``body`` None means a deletion) and return it.

        ``previous`` is the current version as read in this unit (None if the resource is new);
        ``known_new`` skips clearing old index rows for ids this server has just minted.
        """
        moment = utc_now()
        version = previous.version + 1 if previous else 1
        last_updated = instant(moment)
        index = IndexRows()
        patient_id = previous.patient_id if previous else None
        ciphertext: bytes | None = None
        if body is not None:
            meta = dict(body.get("meta") or {})
            meta["versionId"] = str(version)
            meta["lastUpdated"] = last_updated
            body = {**body, "id": res_id, "meta": meta}
            index = self.repo.indexer.index(res_type, res_id, body)
            patient_id = index.patient_id
            owner = DataKeys.owner_for(patient_id)
            plain = orjson.dumps(body)
            try:
                if (
                    res_type in self.repo.indexer.definitions.attachment_types
                    and b'"data":' in plain
                ):
                    stored = orjson.loads(plain)  # a copy: the caller's body keeps its inline data
                    sizes = self.repo.blobs.extract(self.conn, owner, res_type, stored)
                    body = _with_sizes(res_type, orjson.loads(plain), sizes)
                    plain = orjson.dumps(stored)
                ciphertext = self.repo.data_keys.encrypt(
                    self.conn, owner, plain, _aad(res_type, res_id, version)
                )
            except KeyDestroyedError:
                raise gone(f"the record of Patient/{patient_id} was erased") from None
        row = {
            "res_type": res_type,
            "res_id": res_id,
            "version": version,
            "last_updated": sortable(moment),
            "patient_id": patient_id,
            "method": method,
            "deleted": body is None,
            "current": True,
            "body": ciphertext,
        }
        key = (res_type, res_id)
        self._read.pop(key, None)
        earlier = self._pending.get(key)
        if earlier is not None:
            earlier.row["current"] = False
            existed = earlier.existed_in_db
        else:
            existed = previous is not None and not known_new
            if existed:
                self._superseded.append(key)
        stored_version = StoredResource(
            res_type, res_id, version, last_updated, body is None, method, patient_id, body
        )
        self._rows.append(row)
        self._pending[key] = _Pending(row, index, existed, stored_version)
        return stored_version

    def flush(self) -> None:
        """Send buffered writes to the database."""
        if not self._rows:
            return
        conn = self.conn
        by_type: dict[str, list[str]] = {}
        for res_type, res_id in self._superseded:
            by_type.setdefault(res_type, []).append(res_id)
        for res_type, ids in by_type.items():
            for chunk in _chunks(ids, 400):
                conn.execute(
                    update(resource)
                    .where(
                        resource.c.res_type == res_type,
                        resource.c.res_id.in_(chunk),
                        resource.c.current,
                    )
                    .values(current=False)
                )
                for table in INDEX_TABLES.values():
                    conn.execute(
                        delete(table).where(table.c.res_type == res_type, table.c.res_id.in_(chunk))
                    )
        bulk_insert(conn, resource, self._rows)
        by_kind: dict[str, list[Row]] = {}
        for pending in self._pending.values():
            for kind, rows in pending.index.rows.items():
                by_kind.setdefault(kind, []).extend(rows)
        for kind, rows in by_kind.items():
            insert_rows(conn, INDEX_TABLES[kind], KIND_COLUMNS[kind], rows)
        texts = set().union(*(p.index.code_texts for p in self._pending.values()))
        new_texts = texts - self.repo.known_code_texts - self.new_code_texts
        if new_texts:
            # Most codes and displays repeat: only texts not seen (and committed) yet are hashed.
            blind = self.repo.indexer.blind
            text_rows = {
                (system, code, digest)
                for system, code, text in new_texts
                for digest in blind.prefix_hashes(text)
            }
            insert_ignoring_duplicates(conn, code_text, ("system", "code", "value"), text_rows)
            self.new_code_texts |= new_texts
        self._pending.clear()
        self._superseded.clear()
        self._rows.clear()

    def destroy_patient_key(self, patient_id: str) -> bool:
        """Crypto-shred one patient compartment: bodies and blobs become unreadable everywhere,
        and the index rows derived from them (some hold codes and dates in clear) are deleted."""
        self.flush()
        self._read.clear()
        compartment = select(resource.c.res_type, resource.c.res_id).where(
            resource.c.patient_id == patient_id
        )
        for table in INDEX_TABLES.values():
            self.conn.execute(
                delete(table).where(tuple_(table.c.res_type, table.c.res_id).in_(compartment))
            )
        return self.repo.data_keys.destroy(self.conn, DataKeys.owner_for(patient_id))

    # -- reads ----------------------------------------------------------------------------------

    def _decode(self, row: Any, *, inflate: bool = True) -> StoredResource:
        body: dict[str, Any] | None = None
        if row.body is not None:
            owner = DataKeys.owner_for(row.patient_id)
            try:
                plain = self.repo.data_keys.decrypt(
                    self.conn, owner, row.body, _aad(row.res_type, row.res_id, row.version)
                )
            except KeyDestroyedError:
                raise gone(f"{row.res_type}/{row.res_id} was erased") from None
            body = orjson.loads(plain)
            if inflate:
                self.repo.blobs.inflate(self.conn, owner, row.res_type, body)
            else:
                strip_blob_markers(body)  # the attachments keep their metadata, not their data
        return StoredResource(
            row.res_type,
            row.res_id,
            row.version,
            _to_instant(row.last_updated),
            bool(row.deleted),
            row.method,
            row.patient_id,
            body,
        )

    def current(self, res_type: str, res_id: str) -> StoredResource | None:
        """The current version (possibly a deletion), or None if the id was never used."""
        pending = self._pending.get((res_type, res_id))
        if pending is not None:
            # Written in this unit: the buffer holds it. Other buffered writes do not change this
            # row, so a Bundle reading what it references costs no flush.
            return pending.stored
        if (res_type, res_id) in self._read:
            return self._read[(res_type, res_id)]
        row = self.conn.execute(_CURRENT, {"res_type": res_type, "res_id": res_id}).first()
        return self._decode(row) if row is not None else None

    def prefetch_current(self, keys: Sequence[tuple[str, str]]) -> None:
        """Read the current versions of ``keys`` in one query per type (an import batch of
        updates), so that ``current`` answers them without a query each."""
        by_type: dict[str, list[str]] = {}
        for key in keys:
            if key not in self._pending and key not in self._read:
                by_type.setdefault(key[0], []).append(key[1])
        for res_type, ids in by_type.items():
            for chunk in _chunks(list(dict.fromkeys(ids)), 400):
                rows = self.conn.execute(
                    select(resource).where(
                        resource.c.res_type == res_type,
                        resource.c.res_id.in_(chunk),
                        resource.c.current,
                    )
                ).all()
                owners = {DataKeys.owner_for(r.patient_id) for r in rows}
                self.repo.data_keys.prefetch(self.conn, owners)
                found = {r.res_id: r for r in rows}
                for res_id in chunk:
                    row = found.get(res_id)
                    if row is None:
                        self._read[(res_type, res_id)] = None
                        continue
                    try:
                        self._read[(res_type, res_id)] = self._decode(row)
                    except FhirError as exc:
                        if exc.status != 410:
                            raise
                        # erased: left to ``current``, which answers 410 as it always has

    def version(self, res_type: str, res_id: str, version: int) -> StoredResource | None:
        if (res_type, res_id) in self._pending:
            self.flush()
        row = self.conn.execute(
            select(resource).where(
                resource.c.res_type == res_type,
                resource.c.res_id == res_id,
                resource.c.version == version,
            )
        ).first()
        return self._decode(row) if row is not None else None

    def history(
        self,
        res_type: str | None,
        res_id: str | None,
        *,
        since: str | None,
        offset: int,
        count: int,
        where: ColumnElement[bool] | None = None,
    ) -> tuple[int, list[StoredResource]]:
        """Versions newest first, with their total, for one instance, one type or the system;
        ``where`` restricts them to what the caller may see (``history_query`` says which
        versions a history covers)."""
        self.flush()
        cond = history_versions(res_type, res_id, since=since, where=where)
        total_q = select(func.count()).select_from(resource)
        rows_q = select(resource).order_by(resource.c.seq.desc()).offset(offset).limit(count)
        if cond is not None:
            total_q = total_q.where(cond)
            rows_q = rows_q.where(cond)
        total = self.conn.execute(total_q).scalar_one()
        return total, [self._decode(r) for r in self.conn.execute(rows_q)]

    def search_ids(
        self, query: Select[Any], count_query: Select[Any] | None
    ) -> tuple[int | None, list[tuple[str, str]]]:
        """Run a compiled search (see carnet.fhir.search): matching (type, id) pairs and the total."""
        self.flush()
        total = self.conn.execute(count_query).scalar_one() if count_query is not None else None
        return total, [(r[0], r[1]) for r in self.conn.execute(query)]

    def count(self, count_query: Select[Any]) -> int:
        """Run a compiled count (see carnet.fhir.query)."""
        self.flush()
        total: int = self.conn.execute(count_query).scalar_one()
        return total

    def load(
        self, keys: Sequence[tuple[str, str]], *, inflate: bool = True
    ) -> list[StoredResource]:
        """Current versions of ``keys``, in the order given (missing or deleted ones skipped);
        ``inflate=False`` leaves attachments' data out (a list that shows their metadata)."""
        self.flush()
        by_type: dict[str, list[str]] = {}
        for res_type, res_id in keys:
            by_type.setdefault(res_type, []).append(res_id)
        # type = ? AND id IN (...) uses the (type, id, version) index; a row-value IN may not.
        queries = [
            select(resource).where(
                resource.c.res_type == res_type,
                resource.c.res_id.in_(chunk),
                resource.c.current,
                resource.c.deleted.is_(False),
            )
            for res_type, ids in by_type.items()
            for chunk in _chunks(ids, 400)
        ]
        rows: list[Any] = []
        for batch in _chunks(queries, 8):
            # Several types ($everything's references, _include) in one round trip, each branch
            # still on the index.
            if len(batch) == 1:
                rows.extend(self.conn.execute(batch[0]))
            else:
                rows.extend(self.conn.execute(union_all(*batch)))
        found = {(r.res_type, r.res_id): r for r in self.decode_readable(rows, inflate=inflate)}
        return [found[k] for k in keys if k in found]

    def compartment(
        self,
        patient_id: str,
        types: Sequence[str] | None = None,
        where: ColumnElement[bool] | None = None,
    ) -> list[StoredResource]:
        """``load(compartment_keys(...))`` in one query: the current resources of one patient's
        compartment, oldest first."""
        self.flush()
        query = select(resource).where(
            resource.c.patient_id == patient_id,
            resource.c.current,
            resource.c.deleted.is_(False),
        )
        if where is not None:
            query = query.where(where)
        if types:
            query = query.where(resource.c.res_type.in_(list(types)))
        return self.decode_readable(self.conn.execute(query.order_by(resource.c.seq)).all())

    def decode_readable(self, rows: Sequence[Any], *, inflate: bool = True) -> list[StoredResource]:
        """Decoded rows, their data keys fetched in one query; erased (crypto-shredded) ones are
        left out: between index and load they are no match. ``inflate=False`` leaves
        attachments' data out."""
        self.repo.data_keys.prefetch(self.conn, {DataKeys.owner_for(r.patient_id) for r in rows})
        out = []
        for row in rows:
            try:
                out.append(self._decode(row, inflate=inflate))
            except FhirError as exc:
                if exc.status != 410:
                    raise
        return out

    def compartment_keys(
        self,
        patient_id: str,
        types: Sequence[str] | None = None,
        since: str | None = None,
        where: ColumnElement[bool] | None = None,
    ) -> list[tuple[str, str]]:
        """(type, id) of the current resources in one patient's compartment (Patient included);
        ``where`` restricts them to what the caller may see."""
        self.flush()
        query = select(resource.c.res_type, resource.c.res_id).where(
            resource.c.patient_id == patient_id,
            resource.c.current,
            resource.c.deleted.is_(False),
        )
        if where is not None:
            query = query.where(where)
        if types:
            query = query.where(resource.c.res_type.in_(list(types)))
        if since:
            query = query.where(resource.c.last_updated >= since)
        return [(r[0], r[1]) for r in self.conn.execute(query.order_by(resource.c.seq))]


def _with_sizes(res_type: str, body: dict[str, Any], sizes: list[int]) -> dict[str, Any]:
    """The body as returned to the caller: inline data kept, Attachment.size filled in as stored."""
    if res_type != "Binary":
        for (_, node), size in zip(list(attachments(res_type, body)), sizes, strict=True):
            node.setdefault("size", size)
    return body


def _aad(res_type: str, res_id: str, version: int) -> bytes:
    # Binds a ciphertext to its row: a body copied onto another row does not decrypt.
    return f"{res_type}/{res_id}/{version}".encode()


def _to_instant(text: str) -> str:
    return text[:23] + "Z"


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

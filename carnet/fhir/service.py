"""FhirService: the public interface of the FHIR engine (create, read, update, delete, history,
search). Routers, the CLI and other domains call it; each call opens one ``FhirSession`` bound to
its caller (carnet/fhir/session.py), which reads and writes through the repository's unit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from carnet.caller import RequestContext
from carnet.db.engine import is_lock_timeout
from carnet.db.storage_faults import StorageFault, storage_fault, store_places
from carnet.fhir.access import READ_ACTIONS, AccessPolicy
from carnet.fhir.conditional_refs import refuse_conditional_references
from carnet.fhir.definitions import Definitions
from carnet.fhir.errors import FhirError, lock_timeout_error, not_found
from carnet.fhir.query import Compiler
from carnet.fhir.repository import Repository, StoredResource, Unit
from carnet.fhir.search import DEFAULT_MAX_TERMS
from carnet.fhir.searching import Searching
from carnet.fhir.session import FhirSession, WriteResult, int_param
from carnet.fhir.validation import Validator, check_id

__all__ = ["FhirService", "FhirSession", "WriteResult", "int_param"]

log = logging.getLogger("carnet.fhir")


class FhirService:
    """Every FHIR interaction, each in one transaction, each in one caller-bound session."""

    def __init__(
        self,
        repository: Repository,
        definitions: Definitions,
        validator: Validator,
        compiler: Compiler,
        *,
        default_page_size: int = 20,
        max_page_size: int = 1000,
        max_search_terms: int = DEFAULT_MAX_TERMS,
        access: AccessPolicy,
    ) -> None:
        self.repo = repository
        self.definitions = definitions
        self.validator = validator
        self.compiler = compiler
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self.max_search_terms = max_search_terms
        self.searching = Searching(
            definitions,
            compiler,
            default_page_size=default_page_size,
            max_page_size=max_page_size,
            max_search_terms=max_search_terms,
        )
        self.access = access
        """The policy: each session opens its own guard from it to decide and record."""
        self.patient_hooks: list[Callable[[FhirSession, StoredResource], None]] = []
        """Called after a Patient is created or updated, in the same session (identity matching)."""
        self.deposit_hooks: list[
            Callable[[FhirSession, str, str, dict[str, Any]], WriteResult | None]
        ] = []
        """Called before any other resource is created, in the same session, with its type, id
        and body; a hook may take the write over (a document whose Patient is given by identifier
        or contained goes through identity matching: attached, or held in quarantine)."""
        self.body_checks: list[Callable[[str, dict[str, Any]], None]] = [
            refuse_conditional_references  # resolved only in a transaction: 400 elsewhere
        ]
        """Called with the type and body of every create and update before anything is written;
        a check refuses by raising a FhirError (a broken INS anywhere in the body: 422)."""

    @contextmanager
    def session(
        self, ctx: RequestContext, action: str, res_type: str | None, res_id: str | None
    ) -> Iterator[FhirSession]:
        """One interaction of ``ctx``'s caller in one transaction; a failure is recorded after
        its rollback."""
        unit: Unit | None = None
        session: FhirSession | None = None
        try:
            with self.repo.unit(write=action not in READ_ACTIONS) as unit:
                session = FhirSession(self, unit, ctx)
                yield session
        except FhirError as err:
            failed = replace(ctx, rule=err.rule) if err.rule else ctx
            guard = session.guard if session else self.access.open()
            guard.record_failure(failed, action, res_type, res_id, err.status, unit)
            raise
        except Exception as exc:
            guard = session.guard if session else self.access.open()
            places = store_places(self.repo.engine, self.repo.blobs.root)
            fault = storage_fault(exc, *places)
            if fault is not None:  # a full or read-only disk: the caller maps it (507, 503)
                status = 507 if fault is StorageFault.FULL else 503
                try:  # the audit log shares the disk: its write may fail alike
                    guard.record_failure(ctx, action, res_type, res_id, status, unit)
                except Exception as again:
                    if storage_fault(again, *places) is None:
                        raise
                    log.error("storage %s: %s on %s not audited", fault.value, action, res_type)
                raise
            if not is_lock_timeout(exc):  # (PostgreSQL's COPY raises the driver's own error)
                guard.record_failure(ctx, action, res_type, res_id, 500, unit)  # audited alike
                raise
            try:  # the lock may still be held: the refusal is then logged (ids only) instead
                guard.record_failure(ctx, action, res_type, res_id, 503, unit)
            except Exception as again:
                if not is_lock_timeout(again):
                    raise
                log.error("busy %s on %s/%s: lock held, not audited", action, res_type, res_id)
            raise lock_timeout_error() from None
        finally:
            if session is not None:
                for refused, refused_type, refused_id in session.refused:
                    session.guard.record_failure(
                        refused, "delete", refused_type, refused_id, 404, unit
                    )

    def record_failure(
        self,
        ctx: RequestContext,
        action: str,
        res_type: str | None,
        res_id: str | None,
        status: int,
    ) -> None:
        """Record an interaction refused before any session opened (a Bundle that does not
        parse, a job that is not the caller's)."""
        self.access.open().record_failure(ctx, action, res_type, res_id, status)

    # -- checks -----------------------------------------------------------------------------------

    def check_type(self, res_type: str) -> None:
        if res_type not in self.definitions.resource_types:
            raise not_found(f"unknown resource type '{res_type}'")

    @staticmethod
    def check_writable(res_type: str) -> None:
        """AuditEvents come from the audit log only, by any path (REST, transaction, import)."""
        if res_type == "AuditEvent":
            raise FhirError.of(405, "not-supported", "AuditEvent is written by the audit log only")

    # -- single interactions, each in a session of its own -----------------------------------------

    def create(
        self,
        res_type: str,
        body: Any,
        *,
        if_none_exist: str | None = None,
        ctx: RequestContext,
    ) -> WriteResult:
        """Create with a server-assigned id; ``if_none_exist`` makes it conditional."""
        with self.session(ctx, "create", res_type, None) as s:
            self.check_type(res_type)
            self.validator.validate(body, res_type)
            return s.create(res_type, body, if_none_exist)

    def read(self, res_type: str, res_id: str, *, ctx: RequestContext) -> StoredResource:
        with self.session(ctx, "read", res_type, res_id) as s:
            self.check_type(res_type)
            return s.read(res_type, res_id)

    def vread(
        self, res_type: str, res_id: str, version: str, *, ctx: RequestContext
    ) -> StoredResource:
        with self.session(ctx, "vread", res_type, res_id) as s:
            self.check_type(res_type)
            return s.vread(res_type, res_id, version)

    def update(
        self,
        res_type: str,
        res_id: str,
        body: Any,
        *,
        if_match: str | None = None,
        ctx: RequestContext,
    ) -> WriteResult:
        """Update, or create with the client's id if it is new (create-on-update)."""
        with self.session(ctx, "update", res_type, res_id) as s:
            self.check_type(res_type)
            check_id(res_id)
            self.validator.validate(body, res_type)
            return s.update(res_type, res_id, body, if_match)

    def delete(self, res_type: str, res_id: str, *, ctx: RequestContext) -> StoredResource | None:
        """Logical delete: a new version marked deleted. None if there was nothing to delete."""
        with self.session(ctx, "delete", res_type, res_id) as s:
            self.check_type(res_type)
            # the refusal fails this interaction (audited with its rule); the API answers 204
            return s.delete(res_type, res_id, hidden_as_missing=False)

    def history(
        self,
        base: str,
        res_type: str | None,
        res_id: str | None,
        params: list[tuple[str, str]],
        *,
        ctx: RequestContext,
    ) -> dict[str, Any]:
        with self.session(ctx, "history", res_type, res_id) as s:
            if res_type:
                self.check_type(res_type)
            return s.history(base, res_type, res_id, params)

    def search(
        self,
        base: str,
        res_type: str,
        params: list[tuple[str, str]],
        *,
        strict: bool = False,
        attachment_data: bool = True,
        ctx: RequestContext,
    ) -> dict[str, Any]:
        """A searchset Bundle; unknown parameters fail in strict mode and are reported otherwise.
        ``attachment_data=False``: attachments keep their metadata, not their data (a list page
        that shows documents does not read and decrypt each file)."""
        with self.session(ctx, "search", res_type, None) as s:
            return s.search(base, res_type, params, strict=strict, attachment_data=attachment_data)

    def compartment_search(
        self,
        base: str,
        patient_id: str,
        res_type: str,
        params: list[tuple[str, str]],
        *,
        strict: bool = False,
        ctx: RequestContext,
    ) -> dict[str, Any]:
        """Search inside one patient's compartment: ``Patient/<id>/<type>?...``."""
        with self.session(ctx, "search", res_type, None) as s:
            return s.compartment_search(base, patient_id, res_type, params, strict=strict)

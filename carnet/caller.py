"""The neutral types of the caller, shared by the FHIR engine, the policy and the audit log.

Who is asking (``Principal``, built by the authentication layer from a bearer token or a session;
ids and attributes only, no names), the ``RequestContext`` every health-data path requires (there
is no default caller: the CLI asks for ``RequestContext.local_operator`` by name), and what the
caller may read (``Visibility``, declared by the policy, turned into SQL by the query compiler).
This module imports nothing of Carnet's, so fhir, access and audit all depend on it and not on
each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select


class Kind(StrEnum):
    PERSON = "person"  # a citizen: the patient, and the representative of those they act for
    PROFESSIONAL = "professional"  # identified by RPPS, with a profession
    APP = "app"  # a SMART app acting for a person (patient/ scopes) or a professional (user/)
    BACKEND = "backend"  # a backend service (client credentials, system/ scopes)
    OPERATOR = "operator"  # the platform's operator scripts (carnet token issue), system/ scopes


PROFESSIONS = (
    "physician",
    "nurse",
    "pharmacist",
    "biologist",
    "midwife",
    "physiotherapist",
    "dentist",
)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``subject`` is the account or client id the audit log records."""

    kind: Kind
    subject: str
    patient_id: str | None = None  # a person's own Patient; an app's launch patient
    rpps: str | None = None
    profession: str | None = None
    client_id: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    organisation: str | None = None

    @property
    def role(self) -> str:
        if self.kind is Kind.PROFESSIONAL and self.profession:
            return f"professional:{self.profession}"
        return self.kind.value


def may_choose_ids(principal: Principal) -> bool:
    """Whether a caller may create a resource under an id of its choosing (update as create).
    System callers only: for anyone else a PUT to an id they cannot see answers as for a free
    id, whether it is free or taken by an item hidden from them (docs/access.md)."""
    return principal.kind in (Kind.OPERATOR, Kind.BACKEND)


_LOCAL_OPERATOR = Principal(Kind.OPERATOR, "local-operator", scopes=frozenset({"system/*.*"}))


@dataclass(frozen=True)
class RequestContext:
    """Who is asking, from where and why; ids only. ``rule`` is the policy rule that decided.

    The principal is required: nothing stands for a caller that was not given."""

    principal: Principal
    actor: str
    source: str = "127.0.0.1"
    purpose: str = "care"
    rule: str | None = None

    @classmethod
    def local_operator(
        cls, actor: str = "local", source: str = "127.0.0.1", purpose: str = "care"
    ) -> RequestContext:
        """The platform's operator on this machine, with system scopes: for the CLI and the
        in-process loaders it runs (import, demo), never for a request."""
        return cls(_LOCAL_OPERATOR, actor, source, purpose)


@dataclass(frozen=True)
class Authorship:
    """Who wrote an item's first version: the kind of caller and their id (RPPS, account id,
    client id). Recorded from the authenticated caller, never from the body."""

    kind: str
    author: str

    @property
    def patient_side(self) -> bool:
        """Written by the person, a representative or their app, not by care."""
        return self.kind in (Kind.PERSON.value, Kind.APP.value)


# -- what a caller may read -------------------------------------------------------------------

PatientSet = Select[Any] | tuple[str, ...] | None
"""Patients a scope covers: a subquery of ids, explicit ids, or None for every patient."""


@dataclass(frozen=True)
class Denial:
    """Resources a deny rule removes: of these patients (None: all), of these types (None: all)."""

    rule: str
    patients: PatientSet
    types: frozenset[str] | None


@dataclass(frozen=True)
class PatientScope:
    """Resources of these patients, of these types, except items carrying a hiding flag."""

    rule: str
    patients: PatientSet  # None: every resource, in any record or in none (system callers)
    types: frozenset[str] | None
    hidden: frozenset[str]
    denied: tuple[Denial, ...] = ()  # what deny rules take away (a block, an edited rule)
    authored_by: Authorship | None = None  # only the items this author wrote
    narrowed: tuple[tuple[str, Select[Any]], ...] = ()  # (type, ids of it granular scopes cover)


ItemConditions = Callable[
    [PatientScope, ColumnElement[str], ColumnElement[str]], list[ColumnElement[bool]]
]
"""The conditions on one resource (its ``res_type``, ``res_id`` columns in the caller's query)
beyond its record and type: no hiding flag, written by the scope's author, within the granular
scopes. The policy gives them, since it owns the flags and authors they read."""


@dataclass(frozen=True)
class Visibility:
    """What a caller may read; ``shared_types`` covers resources outside any patient record."""

    scopes: tuple[PatientScope, ...]
    shared_types: frozenset[str] | None
    shared_rule: str | None
    item_conditions: ItemConditions

    @property
    def unrestricted(self) -> bool:
        """A scope over every patient's and no patient's resources, of every type, hiding nothing."""
        return any(
            s.patients is None
            and s.types is None
            and not s.hidden
            and not s.denied
            and s.authored_by is None
            and not s.narrowed
            for s in self.scopes
        )

    @property
    def rules(self) -> str:
        names = [s.rule for s in self.scopes] + ([self.shared_rule] if self.shared_rule else [])
        return ",".join(dict.fromkeys(names)) or "no-rule"

"""The policy decision point: one place that says who may do what to which patient's data.

Two questions, answered from the same rule table (``carnet.policy.rules``):
- ``decide``: may this caller do this action to this resource (of this patient, with these
  visibility flags)? For reads, writes and every single-resource interaction.
- ``visibility``: which resources may this caller see at all? A declarative ``Visibility`` that the
  FHIR query compiler turns into SQL, so searches, counts, ``_include``, history, ``$everything``,
  ``$summary`` and exports return only what the caller may see: a masked item is simply absent.

Facts the rules depend on (care relationships, blocks, masks, break-glass grants, app grants,
representations, who wrote an item) are read from the database in the caller's transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, literal, or_, select, tuple_

from carnet.authn.models import access_grant
from carnet.caller import (
    Authorship,
    Denial,
    Kind,
    PatientScope,
    PatientSet,
    Principal,
    Visibility,
)
from carnet.db.instants import stamp, utc_now
from carnet.policy.authors import authorship_of
from carnet.policy.models import (
    access_author,
    access_block,
    access_break_glass,
    access_care,
    access_visibility,
)
from carnet.policy.rules import Rule, load_rules
from carnet.policy.scopes import (
    GranularIds,
    allowed_types,
    granular_queries,
    no_granular_ids,
    parse_scopes,
    permission_for,
)

MASQUE_PS = "MASQUE_PS"
INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
INVISIBLE_REPRESENTANTS_LEGAUX = "INVISIBLE_REPRESENTANTS_LEGAUX"
FLAGS = (MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX)

# Which visibility flags hide an item from a caller under each relationship.
HIDDEN_UNDER: dict[str, frozenset[str]] = {
    "self": frozenset({INVISIBLE_PATIENT}),
    "represented": frozenset({INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX}),
    "care": frozenset({MASQUE_PS}),
    "deposit": frozenset({MASQUE_PS}),
    "author": frozenset(),  # the DMP lets the author see their own document, masked or not
    "break-glass": frozenset({MASQUE_PS}),
    "medecin-traitant": frozenset(),
    "granted": frozenset({INVISIBLE_PATIENT}),
    "system": frozenset(),
    "shared": frozenset(),
}

RULES_TTL = 10.0  # seconds a server keeps the rule table before reading it again
WRITE_ACTIONS = frozenset({"create", "update", "delete"})


def rule_action(action: str) -> str:
    return "write" if action in WRITE_ACTIONS else "read"


def not_hidden(
    scope: PatientScope, res_type: ColumnElement[str], res_id: ColumnElement[str]
) -> ColumnElement[bool] | None:
    """The condition that the resource (``res_type``, ``res_id`` columns of the caller's
    query) carries none of the flags this scope hides; None when it hides nothing. A
    correlated NOT EXISTS on the flags' primary key: one index probe per candidate row."""
    if not scope.hidden:
        return None
    v = access_visibility.c
    flagged = select(v.res_id).where(
        v.res_type == res_type, v.res_id == res_id, v.flag.in_(sorted(scope.hidden))
    )
    return ~flagged.exists()


def row_conditions(
    scope: PatientScope, res_type: ColumnElement[str], res_id: ColumnElement[str]
) -> list[ColumnElement[bool]]:
    """The conditions on the resource (``res_type``, ``res_id`` columns of the caller's query)
    beyond its record and type: no hiding flag, written by the scope's author, within the
    granular scopes (the ``item_conditions`` of every ``Visibility`` the policy declares)."""
    conds: list[ColumnElement[bool]] = []
    shown = not_hidden(scope, res_type, res_id)
    if shown is not None:
        conds.append(shown)
    if scope.authored_by is not None:
        # the author's items, found once through their index (not probed row by row: a
        # professional's broad search would test every row of the type)
        a = access_author.c
        authored = select(a.res_type, a.res_id).where(
            a.author_kind == scope.authored_by.kind, a.author == scope.authored_by.author
        )
        conds.append(tuple_(res_type, res_id).in_(authored))
    for narrowed_type, ids in scope.narrowed:
        conds.append(or_(res_type != narrowed_type, res_id.in_(ids)))
    return conds


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str
    status: int = 200  # 403 when refused, 404 when the item is hidden from this caller
    reason: str = ""


class PolicyDecisionPoint:
    """Decides from the rule table and the patient's controls; every answer names its rule."""

    def __init__(
        self,
        represented: Callable[[Connection, str], Sequence[str]] | None = None,
        record_open: Callable[[Connection, str], bool] | None = None,
        now: Callable[[], datetime] | None = None,
        granular_ids: GranularIds | None = None,
    ) -> None:
        self.represented: Callable[[Connection, str], Sequence[str]] = represented or (
            lambda conn, pid: ()
        )
        self._record_open = record_open or (lambda conn, pid: True)
        self._now = now or (utc_now)
        self.granular_ids: GranularIds = granular_ids or no_granular_ids
        self._rules: list[Rule] | None = None
        self._loaded = 0.0

    def rules(self, conn: Connection) -> list[Rule]:
        """The rule table, re-read at most every ``RULES_TTL`` seconds so that an operator's edit
        (``carnet rules set``) reaches running servers without a restart."""
        moment = time.monotonic()
        if self._rules is None or moment - self._loaded > RULES_TTL:
            self._rules = load_rules(conn)
            self._loaded = moment
        return self._rules

    def reload(self) -> None:
        """Forget the cached rule table now."""
        self._rules = None

    # -- who the caller is to the patient ------------------------------------------------------

    def _actors(self, principal: Principal) -> list[str]:
        if principal.kind is Kind.PERSON:
            return ["person", "representative"]
        return [principal.kind.value]

    @staticmethod
    def _scope_context(principal: Principal) -> str | None:
        """The SMART context whose scopes bind this caller; None when scopes do not apply."""
        if principal.kind is Kind.APP:
            return "patient"
        if principal.kind in (Kind.BACKEND, Kind.OPERATOR):
            return "system"
        if principal.kind is Kind.PROFESSIONAL and principal.client_id:
            return "user"
        return None

    def _scope_types(self, principal: Principal, permission: str) -> frozenset[str] | None:
        """Types SMART scopes allow (apps, backends, operators, professionals using an app)."""
        context = self._scope_context(principal)
        if context is None:
            return None
        return allowed_types(parse_scopes(principal.scopes), context, permission)

    def granular(self, principal: Principal, action: str) -> dict[str, tuple[str, ...]]:
        """Types the caller's SMART scopes cover only in part for ``action``, with the queries
        that say which items (``granular_queries``)."""
        context = self._scope_context(principal)
        if context is None:
            return {}
        return granular_queries(parse_scopes(principal.scopes), context, permission_for(action))

    def within_granular(
        self, conn: Connection, principal: Principal, action: str, res_type: str, res_id: str
    ) -> bool:
        """Whether the caller's scopes cover this resource for ``action`` (its search index, as
        written in this transaction, matches one of the granular queries on its type)."""
        queries = self.granular(principal, action).get(res_type)
        if queries is None:
            return True
        return _member(conn, self.granular_ids(res_type, queries), res_id)

    def _patients(self, conn: Connection, principal: Principal, relationship: str) -> PatientSet:
        """The patients ``principal`` stands in ``relationship`` to."""
        if relationship == "self":
            return (principal.patient_id,) if principal.patient_id else ()
        if relationship == "represented":
            if not principal.patient_id:
                return ()
            return tuple(self.represented(conn, principal.patient_id))
        c, b, g = access_care.c, access_break_glass.c, access_grant.c
        if relationship == "care":
            return select(c.patient_id).where(c.rpps == (principal.rpps or ""))
        if relationship == "medecin-traitant":
            return select(c.patient_id).where(
                c.rpps == (principal.rpps or ""), c.medecin_traitant.is_(True)
            )
        if relationship == "break-glass":
            return select(b.patient_id).where(
                b.rpps == (principal.rpps or ""), b.expires_at > stamp(self._now())
            )
        if relationship == "granted":
            if not principal.patient_id or not principal.client_id:
                return ()
            return select(g.patient_id).where(
                g.patient_id == principal.patient_id,
                g.client_id == principal.client_id,
                g.revoked.is_(False),
            )
        if relationship in ("system", "deposit", "author"):
            return None
        return ()

    def _blocked(self, principal: Principal) -> Select[Any] | None:
        if principal.kind is not Kind.PROFESSIONAL:
            return None
        b = access_block.c
        return select(b.patient_id).where(b.rpps == (principal.rpps or ""))

    # -- visibility: what searches may return ---------------------------------------------------

    def visibility(
        self, conn: Connection, principal: Principal, action: str = "search"
    ) -> Visibility:
        """The resources ``principal`` may read, as scopes the query compiler turns into SQL."""
        permission = permission_for(action)
        scope_types = self._scope_types(principal, permission)
        scopes: list[PatientScope] = []
        shared_types: set[str] | None = set()
        shared_rule: str | None = None
        denials: list[Denial] = []
        actors = self._actors(principal)
        for rule in self.rules(conn):
            if rule.actor not in ("*", *actors) or rule.action not in ("*", "read"):
                continue
            if rule.profession not in ("*", principal.profession or ""):
                continue
            if rule.effect == "deny":
                denied = (
                    self._blocked(principal)
                    if rule.relationship == "blocked"
                    else self._patients(conn, principal, rule.relationship)
                )
                if rule.relationship == "blocked" and denied is None:
                    continue  # blocks concern professionals only
                if denied != ():
                    denials.append(Denial(rule.rule_id, denied, rule.res_types))
                continue
            types = _intersect(rule.res_types, scope_types)
            if types is not None and not types:
                continue
            if rule.relationship == "shared":
                shared_rule = shared_rule or rule.rule_id
                if shared_types is not None:
                    shared_types = None if types is None else shared_types | types
                continue
            patients = self._patients(conn, principal, rule.relationship)
            if patients == ():
                continue
            authored_by = None
            if rule.relationship == "author":
                authored_by = authorship_of(principal)
                if authored_by is None:
                    continue
            scopes.append(
                PatientScope(
                    rule.rule_id,
                    patients,
                    types,
                    HIDDEN_UNDER.get(rule.relationship, frozenset()),
                    authored_by=authored_by,
                )
            )
        narrowed = tuple(
            (res_type, self.granular_ids(res_type, queries))
            for res_type, queries in sorted(self.granular(principal, action).items())
        )
        if denials or narrowed:
            scopes = [
                PatientScope(
                    s.rule,
                    s.patients,
                    s.types,
                    s.hidden,
                    tuple(denials),
                    authored_by=s.authored_by,
                    narrowed=narrowed,
                )
                for s in scopes
            ]
        return Visibility(
            tuple(scopes),
            None if shared_types is None else frozenset(shared_types),
            shared_rule,
            row_conditions,
        )

    # -- decisions on one resource or one type --------------------------------------------------

    def may_attempt(
        self, conn: Connection, principal: Principal, action: str, res_type: str
    ) -> Decision:
        """Whether any rule could allow ``action`` on ``res_type`` for this caller at all."""
        act = rule_action(action)
        scope_types = self._scope_types(principal, permission_for(action))
        if scope_types is not None and res_type not in scope_types:
            return Decision(False, "smart-scope", 403, f"no scope grants {res_type}")
        for rule in self.rules(conn):
            if rule.effect == "allow" and any(
                rule.matches(actor, principal.profession, res_type, act)
                for actor in self._actors(principal)
            ):
                return Decision(True, rule.rule_id)
        return Decision(False, "no-rule", 403, f"no rule allows {act} of {res_type}")

    def decide(
        self,
        conn: Connection,
        principal: Principal,
        action: str,
        res_type: str,
        patient_id: str | None,
        flags: frozenset[str] = frozenset(),
        author: Authorship | None = None,
    ) -> Decision:
        """Whether ``principal`` may do ``action`` on a resource of ``patient_id`` with ``flags``,
        written by ``author`` (None: by a system caller, or unknown).

        A refusal is 403, except when the caller has a right on the record but the item is hidden
        from them: then 404, exactly as for an item that does not exist. Persons and their apps
        never update or delete an item written by care (a professional's result stays theirs).
        """
        mine = author is not None and author == authorship_of(principal)
        act = rule_action(action)
        scope_types = self._scope_types(principal, permission_for(action))
        if scope_types is not None and res_type not in scope_types:
            return Decision(False, "smart-scope", 403, f"no scope grants {res_type}")
        hidden_by: str | None = None
        for rule in self.rules(conn):
            if not any(
                rule.matches(a, principal.profession, res_type, act)
                for a in self._actors(principal)
            ):
                continue
            if rule.relationship == "shared":
                if patient_id is None and rule.effect == "allow":
                    return Decision(True, rule.rule_id)
                continue
            if patient_id is None:
                # Outside any record: system callers, and professionals' deposits (a Binary, an
                # Organization they cite), within their rule's types.
                if rule.effect == "allow" and (
                    rule.relationship == "system"
                    or (rule.relationship == "deposit" and action == "create")
                ):
                    return Decision(True, rule.rule_id)
                continue
            relationship = rule.relationship
            if relationship == "deposit" and action != "create":
                # changing or deleting what is there needs a care relationship, or authorship
                relationship = "author" if mine else "care"
            if relationship == "author":
                if not mine:  # (a block is a deny rule: it has refused already)
                    continue
            elif not self._holds(conn, principal, relationship, patient_id):
                continue
            if rule.effect == "deny":
                return Decision(False, rule.rule_id, 403, "refused by the patient's controls")
            if act == "write" and not self._record_open(conn, patient_id):
                return Decision(False, "record-closed", 403, "this record is not open")
            if flags & HIDDEN_UNDER.get(rule.relationship, frozenset()):
                hidden_by = hidden_by or rule.rule_id
                continue
            if (
                action in ("update", "delete")
                and principal.kind in (Kind.PERSON, Kind.APP)
                and (author is None or not author.patient_side)
            ):
                return Decision(
                    False,
                    "care-authored-read-only",
                    403,
                    "an item written by a professional is read-only in the patient's record",
                )
            return Decision(True, rule.rule_id)
        if hidden_by is not None:
            return Decision(False, hidden_by, 404, "not found")
        return Decision(False, "no-rule", 403, f"no right to {act} this record's {res_type}")

    def _holds(
        self, conn: Connection, principal: Principal, relationship: str, patient_id: str
    ) -> bool:
        if relationship == "blocked":
            blocked = self._blocked(principal)
            return blocked is not None and _member(conn, blocked, patient_id)
        if relationship in ("system", "deposit"):
            return True
        if relationship == "author":
            return False  # decided on the item's author, in ``decide``
        patients = self._patients(conn, principal, relationship)
        if patients is None:
            return True
        if isinstance(patients, tuple):
            return patient_id in patients
        return _member(conn, patients, patient_id)

    @staticmethod
    def flags(conn: Connection, res_type: str, res_id: str) -> frozenset[str]:
        """The visibility flags set on one resource."""
        v = access_visibility.c
        rows = conn.execute(
            select(v.flag).where(v.res_type == res_type, v.res_id == res_id)
        ).scalars()
        return frozenset(rows)


def _member(conn: Connection, query: Select[Any], patient_id: str) -> bool:
    column = query.selected_columns[0]
    probe = query.where(column == literal(patient_id)).limit(1)
    return conn.execute(probe).first() is not None


def _intersect(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b

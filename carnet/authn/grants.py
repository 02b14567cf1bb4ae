"""What outlives one token request: a person's grants to apps and the list of revoked tokens.

A person's approval of an app is a grant (``access_grant``, one row per patient and client): the
authorisation server records it when the person approves, checks it at every refresh, and the
person lists and withdraws it; withdrawing stops the app's refresh tokens for that patient at once.
An access token revoked before it expires is remembered by its jti (``access_revoked_token``) until
it would have expired; the request guard asks ``RevocationList.is_revoked`` for every bearer token.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine, and_, insert, select, update

from carnet.audit.events import Actor, Touched, build_event
from carnet.audit.service import AuditService
from carnet.authn.models import (
    access_client,
    access_grant,
    access_refresh_token,
    access_revoked_token,
)
from carnet.authn.smart import Grant
from carnet.caller import Principal, RequestContext
from carnet.db.engine import reading, writing
from carnet.db.instants import stamp


def audit_oauth(
    audit: AuditService,
    action: str,
    who: Principal,
    client_id: str | None,
    patient_id: str | None,
    outcome: int,
    source: str,
) -> None:
    """One audit event of the authorisation server (ids only): who, for which app and record."""
    actor = Actor(
        actor=who.subject,
        source=source,
        purpose="access",
        role=who.role,
        organisation=who.organisation,
        client_id=client_id,
    )
    touched = [Touched("Patient", patient_id, None, patient_id)] if patient_id else []
    audit.append([build_event(actor, action, None, outcome, touched)])


def end_app_access_in(
    audit: AuditService, conn: Connection, patient_id: str, ctx: RequestContext
) -> list[str]:
    """A closed space leaves no token able to read its record: every grant of the patient to an
    app and every refresh token for the record are revoked in the closure's transaction, and each
    app's revocation is an audit event (``grant-revoke``, the closure's caller, rule
    ``record-closed``) in the record's history. The access tokens already issued stop at their
    next request: the policy's ``granted`` relationship reads the grant. The record domain is
    given this as its closure hook (carnet/app.py); returns the apps' client ids."""
    g, r = access_grant.c, access_refresh_token.c
    granted = select(g.client_id, g.patient_id).where(g.patient_id == patient_id, ~g.revoked)
    refreshing = select(r.client_id, r.patient_id).where(r.patient_id == patient_id, ~r.revoked)
    apps = sorted(
        {(row.client_id, row.patient_id) for q in (granted, refreshing) for row in conn.execute(q)}
    )
    conn.execute(update(access_grant).where(g.patient_id == patient_id).values(revoked=True))
    conn.execute(
        update(access_refresh_token)
        .where(r.patient_id == patient_id, ~r.revoked)
        .values(revoked=True)
    )
    _audit_revocations_in(audit, conn, ctx, "grant-revoke", "record-closed", apps)
    return [client_id for client_id, _ in apps]


def end_refresh_tokens_in(
    audit: AuditService, conn: Connection, account_id: str, ctx: RequestContext
) -> list[str]:
    """A password reset ends the refresh tokens of every app acting for the account (whoever
    took the account over may have authorised their own), in the reset's transaction; each
    app's revocation is an audit event (``token-revoke``, rule ``password-reset``) in the
    record's history. The grants stay listed: an app gets new tokens only through a new
    authorisation, which needs the new password. Returns the apps' client ids."""
    r = access_refresh_token.c
    live = and_(r.account_id == account_id, ~r.revoked)
    found = conn.execute(select(r.client_id, r.patient_id).where(live))
    apps = sorted({(row.client_id, row.patient_id) for row in found}, key=_by_app)
    conn.execute(update(access_refresh_token).where(live).values(revoked=True))
    _audit_revocations_in(audit, conn, ctx, "token-revoke", "password-reset", apps)
    return sorted({client_id for client_id, _ in apps})


def _by_app(app: tuple[str, str | None]) -> tuple[str, str]:
    return app[0], app[1] or ""


def _audit_revocations_in(
    audit: AuditService,
    conn: Connection,
    ctx: RequestContext,
    action: str,
    rule: str,
    apps: list[tuple[str, str | None]],
) -> None:
    """One event per app and record, ids only, in the caller's transaction."""
    who = ctx.principal
    events = [
        build_event(
            Actor(
                actor=ctx.actor,
                source=ctx.source,
                purpose="access",
                role=who.role,
                organisation=who.organisation,
                client_id=client_id,
                rule=rule,
            ),
            action,
            None,
            200,
            [Touched("Patient", patient_id, None, patient_id)] if patient_id else [],
        )
        for client_id, patient_id in apps
    ]
    if events:
        audit.append_in(conn, events)


class Grants:
    """A person's grants to apps: recorded at approval, listed, withdrawn, checked at refresh."""

    def __init__(self, engine: Engine, audit: AuditService) -> None:
        self.engine = engine
        self.audit = audit

    @staticmethod
    def record(
        conn: Connection, patient_id: str, client_id: str, scopes: list[str], moment: datetime
    ) -> None:
        """Record (or renew) the patient's grant to the app, in the approval's transaction."""
        key = and_(access_grant.c.patient_id == patient_id, access_grant.c.client_id == client_id)
        values = {"scopes": " ".join(scopes), "granted_at": stamp(moment), "revoked": False}
        if conn.execute(update(access_grant).where(key).values(**values)).rowcount == 0:
            conn.execute(
                insert(access_grant).values(patient_id=patient_id, client_id=client_id, **values)
            )

    def of_patient(self, patient_id: str) -> list[Grant]:
        """The apps this patient granted access to (active grants only)."""
        query = (
            select(access_grant, access_client.c.name)
            .join(access_client, access_client.c.client_id == access_grant.c.client_id)
            .where(access_grant.c.patient_id == patient_id, ~access_grant.c.revoked)
            .order_by(access_grant.c.granted_at)
        )
        with reading(self.engine) as conn:
            return [
                Grant(r.client_id, r.name, tuple(r.scopes.split()), r.granted_at)
                for r in conn.execute(query)
            ]

    def is_active(self, patient_id: str, client_id: str) -> bool:
        """Whether the patient's grant to the app stands (a refresh needs it)."""
        with reading(self.engine) as conn:
            row = conn.execute(
                select(access_grant.c.revoked).where(
                    access_grant.c.patient_id == patient_id, access_grant.c.client_id == client_id
                )
            ).first()
        return row is not None and not row.revoked

    def withdraw(self, patient_id: str, client_id: str, who: Principal, *, source: str) -> bool:
        """Withdraw a grant: the app's refresh tokens for this patient stop working at once,
        its access tokens when they expire (minutes). False if there was no active grant."""
        with writing(self.engine) as conn:
            done = conn.execute(
                update(access_grant)
                .where(
                    access_grant.c.patient_id == patient_id,
                    access_grant.c.client_id == client_id,
                    ~access_grant.c.revoked,
                )
                .values(revoked=True)
            ).rowcount
            conn.execute(
                update(access_refresh_token)
                .where(
                    access_refresh_token.c.patient_id == patient_id,
                    access_refresh_token.c.client_id == client_id,
                )
                .values(revoked=True)
            )
        if done:
            audit_oauth(self.audit, "grant-revoke", who, client_id, patient_id, 200, source)
        return bool(done)


class RevocationList:
    """Access tokens revoked before they expire, by jti, kept until they would have expired."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, jti: str, expires: datetime) -> None:
        """Revoke the access token ``jti`` (which expires at ``expires``); again is a no-op."""
        with writing(self.engine) as conn:
            known = conn.execute(
                select(access_revoked_token.c.jti).where(access_revoked_token.c.jti == jti)
            ).first()
            if known is None:
                conn.execute(
                    insert(access_revoked_token).values(jti=jti, expires_at=stamp(expires))
                )

    def is_revoked(self, jti: str) -> bool:
        """True if the access token with this jti was revoked before it expired."""
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(access_revoked_token.c.jti).where(access_revoked_token.c.jti == jti)
                ).first()
                is not None
            )

"""Portal sessions: random cookie values, their CSRF tokens, expiry, second factor and rotation.

A session id and its CSRF token are 256-bit random values; the database keeps only their SHA-256
digests, so a copy of it opens no session. A session opened after the password alone is *pending*:
it lives ``pending_minutes`` and can only be promoted, after the second factor, into a full session
with a NEW id (the pending one is revoked: a session id known before login is worth nothing after
it). A full session slides: each use pushes its expiry to ``settings.session_minutes`` from now,
up to ``absolute_hours`` after it was opened. Disabling the account ends its sessions at once.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, delete, insert, or_, select, update

from carnet.authn.digests import digest
from carnet.authn.models import access_session
from carnet.db.engine import reading, writing
from carnet.db.instants import Clock, parse_stamp, stamp, utc_now
from carnet.settings import Settings

if TYPE_CHECKING:
    from carnet.authn.service import AccountService
    from carnet.caller import Principal

PENDING_MINUTES = 5.0  # between the password and the second factor
ABSOLUTE_HOURS = 12.0  # no session outlives this, however active
_MAX_VALUE_LEN = 128  # cookie or token values longer than ours are not ours
_SLIDE_GRANULARITY = timedelta(minutes=1)  # do not rewrite the expiry on every request


class SessionError(Exception):
    """A session that cannot be used for what was asked (unknown, expired, revoked, wrong state)."""


def _new_value() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def _hash(value: str | None) -> str | None:
    if not value or len(value) > _MAX_VALUE_LEN:
        return None
    return digest(value)


class SessionService:
    """Opens, checks, rotates and closes portal sessions."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        now: Clock = utc_now,
        pending_minutes: float = PENDING_MINUTES,
        absolute_hours: float = ABSOLUTE_HOURS,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.now = now
        self.idle = timedelta(minutes=settings.session_minutes)
        self.pending = timedelta(minutes=pending_minutes)
        self.absolute = timedelta(hours=absolute_hours)

    def open(self, account_id: str, second_factor: bool) -> tuple[str, str]:
        """A new session for ``account_id``: (cookie value, CSRF token), both shown only now."""
        with writing(self.engine) as conn:
            return self._insert(conn, account_id, second_factor)

    def _insert(self, conn: Connection, account_id: str, second_factor: bool) -> tuple[str, str]:
        cookie, csrf = _new_value(), _new_value()
        moment = self.now()
        conn.execute(
            insert(access_session).values(
                session_hash=digest(cookie),
                account_id=account_id,
                csrf_hash=digest(csrf),
                second_factor=second_factor,
                created_at=stamp(moment),
                expires_at=stamp(moment + (self.idle if second_factor else self.pending)),
                revoked=False,
            )
        )
        return cookie, csrf

    def _live(self, conn: Connection, cookie_value: str | None) -> Any:
        """The session row if it is neither revoked nor expired (idle or absolute)."""
        key = _hash(cookie_value)
        if key is None:
            return None
        row = conn.execute(
            select(access_session).where(access_session.c.session_hash == key)
        ).first()
        if row is None or row.revoked:
            return None
        moment = self.now()
        if parse_stamp(row.expires_at) <= moment:
            return None
        if parse_stamp(row.created_at) + self.absolute <= moment:
            return None
        return row

    def principal(self, cookie_value: str | None, accounts: AccountService) -> Principal | None:
        """The caller of a full session (second factor done, account usable), sliding its
        expiry; None for anything else."""
        with reading(self.engine) as conn:
            row = self._live(conn, cookie_value)
        if row is None or not row.second_factor:
            return None
        from carnet.authn.service import AccountError

        try:
            principal = accounts.principal_for(row.account_id)  # refuses a disabled account
        except AccountError:
            return None
        moment = self.now()
        target = min(moment + self.idle, parse_stamp(row.created_at) + self.absolute)
        if target - parse_stamp(row.expires_at) >= _SLIDE_GRANULARITY:
            with writing(self.engine) as conn:
                conn.execute(
                    update(access_session)
                    .where(access_session.c.session_hash == row.session_hash)
                    .values(expires_at=stamp(target))
                )
        return principal

    def pending_account(self, cookie_value: str | None) -> str | None:
        """The account of a live session still waiting for its second factor."""
        with reading(self.engine) as conn:
            row = self._live(conn, cookie_value)
        if row is None or row.second_factor:
            return None
        return str(row.account_id)

    def session_account(self, cookie_value: str | None) -> str | None:
        """The account of any live session, pending or full (logout, CSRF checks)."""
        with reading(self.engine) as conn:
            row = self._live(conn, cookie_value)
        return None if row is None else str(row.account_id)

    def check_csrf(self, cookie_value: str | None, csrf_token: str | None) -> bool:
        """True when ``csrf_token`` is the token of the live session ``cookie_value`` names
        (digests compared in constant time)."""
        offered = _hash(csrf_token)
        with reading(self.engine) as conn:
            row = self._live(conn, cookie_value)
        if row is None or offered is None:
            return False
        return hmac.compare_digest(offered.encode(), str(row.csrf_hash).encode())

    def promote(self, cookie_value: str | None) -> tuple[str, str]:
        """After the second factor: a NEW full session for the pending session's account (new
        cookie and CSRF token); the pending session is revoked. SessionError if it is not a live
        pending session."""
        key = _hash(cookie_value)
        with writing(self.engine) as conn:
            row = self._live(conn, cookie_value)
            if row is None or row.second_factor or key is None:
                raise SessionError("no pending session to complete")
            done = conn.execute(
                update(access_session)
                .where(access_session.c.session_hash == key, access_session.c.revoked.is_(False))
                .values(revoked=True)
            ).rowcount
            if not done:  # promoted concurrently
                raise SessionError("no pending session to complete")
            return self._insert(conn, row.account_id, True)

    def close(self, cookie_value: str | None) -> str | None:
        """Revoke a session (logout); returns its account id, None if there was no live one."""
        key = _hash(cookie_value)
        if key is None:
            return None
        with writing(self.engine) as conn:
            row = self._live(conn, cookie_value)
            conn.execute(
                update(access_session)
                .where(access_session.c.session_hash == key)
                .values(revoked=True)
            )
        return None if row is None else str(row.account_id)

    def close_all(self, account_id: str) -> int:
        """Revoke every session of an account (password change, account closure)."""
        with writing(self.engine) as conn:
            return self.close_all_in(conn, account_id)

    @staticmethod
    def close_all_in(conn: Connection, account_id: str) -> int:
        """:meth:`close_all` in the caller's transaction (a reset code's claim: the new password
        and the end of the old sessions commit together)."""
        return int(
            conn.execute(
                update(access_session)
                .where(
                    access_session.c.account_id == account_id,
                    access_session.c.revoked.is_(False),
                )
                .values(revoked=True)
            ).rowcount
        )

    def purge(self) -> int:
        """Delete sessions that ended (expired or revoked) more than a day ago."""
        cutoff = stamp(self.now() - timedelta(days=1))
        with writing(self.engine) as conn:
            return int(
                conn.execute(
                    delete(access_session).where(
                        or_(
                            access_session.c.expires_at < cutoff,
                            (access_session.c.revoked.is_(True))
                            & (access_session.c.created_at < cutoff),
                        )
                    )
                ).rowcount
            )

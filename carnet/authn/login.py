"""Login verification: passwords, second factors, lockout and backoff, and their audit.

Every password or TOTP attempt is a row of ``access_login_attempt`` (login hash, source address,
time, success). Guessing is bounded by ``LoginThrottle`` (carnet/authn/throttle.py): growing delays
per login and address, a looser ceiling per login that spares the addresses the owner signs in from,
and a limit per address. The rule is the same for logins that have no account, and a wrong
password, an unknown login, a disabled account or an account without a password all get the same
answer after the same argon2 work: nothing tells an attacker whether a login exists. An attempt is
recorded as a failure *before* the password is checked (and marked successful afterwards), so
parallel requests cannot overrun a limit.

The accounts themselves (creation, passwords, TOTP enrolment, lookups) are ``AccountService``'s
(service.py); this module only checks what a caller presents against them.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyotp
from sqlalchemy import Connection, insert, select, update

from carnet.audit.events import Actor, Event, Touched, build_event
from carnet.audit.service import AuditService
from carnet.authn.models import access_account
from carnet.authn.service import (
    TOTP_OWNER,
    AccountError,
    AccountService,
    LoginFailedError,
    LoginThrottledError,
    totp_aad,
)
from carnet.authn.throttle import SOURCE_MAX_FAILURES, SOURCE_WINDOW_MINUTES, LoginThrottle
from carnet.db.engine import reading, writing
from carnet.db.instants import Clock, parse_stamp, stamp
from carnet.policy.models import access_alert

_SOURCE_MAX_LEN = 64
# Forgotten-password requests: each one notifies the person and voids their previous code, so
# they are limited more tightly than guesses. Per login and address: 3, then growing delays; per
# login from addresses the owner never completed a sign-in from: 10 a day.
RESET_FREE_REQUESTS = 3
RESET_DAILY_CEILING = 10


@dataclass
class _Outcome:
    account_id: str | None = None
    error: AccountError | None = None
    events: list[Event] = field(default_factory=list)


class LoginVerifier:
    """Checks passwords and second factors against ``accounts``, with lockout and rate limits.

    ``audit`` receives one event per login, failure, lockout, step-up and logout; ``now`` is the
    clock (by default the accounts' one; tests move it instead of sleeping). The password hasher is
    the accounts' one, so an unknown login costs the same argon2 work as a known one.
    """

    def __init__(
        self,
        accounts: AccountService,
        audit: AuditService,
        *,
        now: Clock | None = None,
        source_max_failures: int = SOURCE_MAX_FAILURES,
        source_window_minutes: float = SOURCE_WINDOW_MINUTES,
    ) -> None:
        self.accounts = accounts
        self.audit = audit
        self.engine = accounts.engine
        self.crypto = accounts.crypto
        self.passwords = accounts.passwords
        self.now = now or accounts.now
        self.throttle = LoginThrottle(
            accounts.settings,
            source_max_failures=source_max_failures,
            source_window_minutes=source_window_minutes,
        )
        self.lockout_window = timedelta(minutes=accounts.settings.lockout_minutes)
        self.reset_throttle = LoginThrottle(
            accounts.settings,
            source_max_failures=source_max_failures,
            source_window_minutes=source_window_minutes,
            free_failures=RESET_FREE_REQUESTS,
            account_ceiling=RESET_DAILY_CEILING,
        )

    def verify_password_login(self, login: str, password: str, source: str) -> str:
        """The account id for a right login and password. LoginFailedError for anything wrong (same
        message whether the login exists or not), LoginThrottledError when this login or this source
        has failed too often. Every attempt is recorded and audited."""
        return self._check_password(self.accounts.login_hash(login), password, source, "login")

    def verify_step_up(self, account_id: str, password: str, code: str, source: str) -> None:
        """Before a sensitive control: the account's password and a fresh TOTP code again (a code
        is accepted once, so not the one of the login). Same limits, answers and audit as a login,
        the successes recorded as ``step-up``; LoginFailedError / LoginThrottledError."""
        with reading(self.engine) as conn:
            login_hash = conn.execute(
                select(access_account.c.login_hash).where(access_account.c.account_id == account_id)
            ).scalar()
        if login_hash is None:
            self.passwords.burn()
            raise LoginFailedError("invalid password or code")
        self._check_password(str(login_hash), password, source, "step-up")
        self.verify_totp(account_id, code, source, action="step-up")

    def _check_password(self, login_hash: str, password: str, source: str, action: str) -> str:
        source = _clip_source(source)
        moment = self.now()
        # 1. Under the account row's lock: check the limits and record a pessimistic failure.
        with writing(self.engine) as conn:
            row = conn.execute(
                select(access_account)
                .where(access_account.c.login_hash == login_hash)
                .with_for_update()
            ).first()
            # Addresses that completed a second factor for this account are familiar.
            familiar = None if row is None else self.accounts.totp_key(row.account_id)
            wait = self.throttle.wait(conn, login_hash, source, moment, familiar_key=familiar)
            attempt = 0 if wait else self.throttle.record(conn, login_hash, source, moment)
        if wait:
            self._publish(self._throttled_events(row, source, moment))
            raise LoginThrottledError(wait)
        # 2. The slow part, outside any transaction.
        if row is None or row.password_hash is None:
            self.passwords.burn()
            ok = False
        else:
            ok = self.passwords.verify(row.password_hash, password) and not row.disabled
        rehashed = None
        if ok and row is not None and self.passwords.needs_rehash(row.password_hash):
            rehashed = self.passwords.hash(password)  # parameters raised since it was made
        # 3. Success marks the attempt; failure may lock the login.
        with writing(self.engine) as conn:
            if ok and row is not None:
                self.throttle.succeeded(conn, attempt)
                if rehashed is not None:
                    conn.execute(
                        update(access_account)
                        .where(access_account.c.account_id == row.account_id)
                        .values(password_hash=rehashed)
                    )
                events = [self._event(action, row, source, 200, moment, step="password")]
            else:
                events = self._after_failure(conn, row, login_hash, source, moment)
        self._publish(events)
        if not ok or row is None:
            raise LoginFailedError()
        return str(row.account_id)

    def verify_totp(
        self, account_id: str, code: str, source: str, *, action: str = "login"
    ) -> None:
        """Check a TOTP code (the current, previous or next 30 s step, each accepted once).
        Failures count towards the same limits as passwords; LoginFailedError / LoginThrottledError.
        ``action`` names the success in the audit (``login``, ``step-up``)."""
        source = _clip_source(source)
        moment = self.now()
        outcome = _Outcome()
        with writing(self.engine) as conn:
            try:
                outcome = self._totp_in(conn, account_id, code.strip(), source, moment, action)
            finally:
                self.crypto.data_keys.after_rollback(conn)
        self._publish(outcome.events)
        if outcome.error is not None:
            raise outcome.error

    def _totp_in(
        self,
        conn: Connection,
        account_id: str,
        code: str,
        source: str,
        moment: datetime,
        action: str,
    ) -> _Outcome:
        row = conn.execute(
            select(access_account)
            .where(access_account.c.account_id == account_id)
            .with_for_update()
        ).first()
        if row is None:
            return _Outcome(error=LoginFailedError("invalid code"))
        # The second factor has its own key: only who knows the password reaches it, so its
        # ceiling spares no address, and password guesses elsewhere do not block it.
        key = self.accounts.totp_key(account_id)
        wait = self.throttle.wait(conn, key, source, moment)
        if wait:
            return _Outcome(
                error=LoginThrottledError(wait), events=self._throttled_events(row, source, moment)
            )
        attempt = self.throttle.record(conn, key, source, moment)
        step = None
        if row.totp_secret is not None and not row.disabled and code.isdigit():
            seed = self.crypto.data_keys.decrypt(
                conn, TOTP_OWNER, row.totp_secret, totp_aad(account_id)
            ).decode()
            step = _matching_step(pyotp.TOTP(seed), code, moment)
        if step is None or (row.totp_last_step is not None and step <= row.totp_last_step):
            events = self._after_failure(conn, row, key, source, moment, step="totp")
            return _Outcome(error=LoginFailedError("invalid code"), events=events)
        self.throttle.succeeded(conn, attempt)
        conn.execute(
            update(access_account)
            .where(access_account.c.account_id == account_id)
            .values(totp_last_step=step, failed_logins=0, locked_until=None)
        )
        return _Outcome(
            account_id, events=[self._event(action, row, source, 200, moment, step="totp")]
        )

    def check_reset_request(self, login: str, source: str) -> None:
        """May a forgotten-password code be sent for ``login`` now, asked from ``source``? Each
        request is counted (under a key of its own, ``AccountService.reset_key``, so requests
        never hold up the login's sign-ins) and limited by the sign-in's throttle: per login and
        address, per login (sparing the addresses the owner completed a sign-in from, so a
        stranger's requests cannot stop the owner's reset), per address across logins. Unknown
        logins are counted exactly like known ones, so the answer tells nothing.
        LoginThrottledError (audited ``password-reset-request``, 429) when it must wait."""
        source = _clip_source(source)
        moment = self.now()
        key = self.accounts.reset_key(login)
        with writing(self.engine) as conn:
            row = conn.execute(
                select(access_account)
                .where(access_account.c.login_hash == self.accounts.login_hash(login))
                .with_for_update()
            ).first()
            familiar = None if row is None else self.accounts.totp_key(row.account_id)
            wait = self.reset_throttle.wait(conn, key, source, moment, familiar_key=familiar)
            if not wait:
                self.reset_throttle.record(conn, key, source, moment)
        if wait:
            if row is None:
                who = Actor(actor="unknown", source=source, purpose="authentication")
                event = build_event(who, "password-reset-request", None, 429, [], moment=moment)
            else:
                event = self._event("password-reset-request", row, source, 429, moment)
            self._publish([event])
            raise LoginThrottledError(wait, "too many requests; try again later")

    def reset_in(self, conn: Connection, account_id: str, source: str) -> None:
        """Audit a password set with a reset code (``password-reset``, 200, in the person's
        history), in the transaction that spends the code: it commits with the new password."""
        self._code_spent_in(conn, "password-reset", account_id, source)

    def activated_in(self, conn: Connection, account_id: str, source: str) -> None:
        """Audit an account created with an activation code (``activation``, 200, actor the new
        account, in the person's history), in the transaction that spends the code: it commits
        with the account, as ``reset_in`` does with a new password."""
        self._code_spent_in(conn, "activation", account_id, source)

    def _code_spent_in(self, conn: Connection, action: str, account_id: str, source: str) -> None:
        row = conn.execute(
            select(access_account).where(access_account.c.account_id == account_id)
        ).first()
        if row is not None:
            event = self._event(action, row, _clip_source(source), 200, self.now())
            self.audit.append_in(conn, [event])

    def activation_refused(self, patient_id: str | None, source: str, status: int) -> None:
        """Audit an activation code refused (``activation``, actor unknown): one that opens
        nothing (wrong, used, expired: 400, no space known), or a code of a space that already
        has its person account (409, in that person's history, who sees it was tried)."""
        who = Actor(actor="unknown", source=_clip_source(source), purpose="authentication")
        touched = _patient_touched(patient_id)
        self._publish([build_event(who, "activation", None, status, touched, moment=self.now())])

    def reset_refused(self, login: str, source: str) -> None:
        """Audit a reset code refused for ``login`` (wrong, used, expired or another's:
        ``password-reset``, 400), in the account's history when the login has one."""
        source = _clip_source(source)
        with reading(self.engine) as conn:
            row = conn.execute(
                select(access_account).where(
                    access_account.c.login_hash == self.accounts.login_hash(login)
                )
            ).first()
        if row is None:
            who = Actor(actor="unknown", source=source, purpose="authentication")
            event = build_event(who, "password-reset", None, 400, [], moment=self.now())
        else:
            event = self._event("password-reset", row, source, 400, self.now())
        self._publish([event])

    def logged_out(self, account_id: str, source: str) -> None:
        """Audit a logout (the session service revoked the session)."""
        found = self.accounts.account(account_id)
        who = Actor(actor=account_id, source=_clip_source(source), purpose="authentication")
        touched = _patient_touched(found.patient_id if found else None)
        self._publish([build_event(who, "logout", None, 200, touched, moment=self.now())])

    # -- limits, alerts, audit ----------------------------------------------------------------

    def _after_failure(
        self,
        conn: Connection,
        row: Any,
        login_hash: str,
        source: str,
        moment: datetime,
        *,
        step: str = "password",
    ) -> list[Event]:
        """Count the failure; when the login reaches its ceiling (unfamiliar addresses refused),
        mark the account ``locked_until`` with an alert and an audit event; raise an alert when a
        source address reaches its limit."""
        events: list[Event] = []
        failures = self.throttle.account_failures(conn, login_hash, moment)
        if row is not None:
            events.append(self._event("login-failed", row, source, 401, moment, step=step))
            values: dict[str, Any] = {"failed_logins": failures}
            already = row.locked_until is not None and parse_stamp(row.locked_until) > moment
            if failures >= self.throttle.account_ceiling and not already:
                values["locked_until"] = stamp(moment + self.lockout_window)
                self._alert(conn, "lockout", row.account_id, row.patient_id, moment)
                events.append(self._event("locked", row, source, 429, moment))
            conn.execute(
                update(access_account)
                .where(access_account.c.account_id == row.account_id)
                .values(**values)
            )
        else:
            who = Actor(actor="unknown", source=source, purpose="authentication")
            events.append(build_event(who, "login-failed", None, 401, [], moment=moment))
        by_source = self.throttle.source_failures(conn, source, moment)
        if by_source == self.throttle.source_max_failures:
            self._alert(conn, "login-throttled", source, None, moment)
        return events

    def _throttled_events(self, row: Any, source: str, moment: datetime) -> list[Event]:
        if row is None:
            who = Actor(actor="unknown", source=source, purpose="authentication")
            return [build_event(who, "login-failed", None, 429, [], moment=moment)]
        return [self._event("login-failed", row, source, 429, moment)]

    @staticmethod
    def _alert(
        conn: Connection, kind: str, subject: str, patient_id: str | None, moment: datetime
    ) -> None:
        conn.execute(
            insert(access_alert).values(
                id=str(uuid.uuid4()),
                kind=kind,
                patient_id=patient_id,
                subject=subject,
                created_at=stamp(moment),
                acknowledged=False,
            )
        )

    @staticmethod
    def _event(
        action: str, row: Any, source: str, outcome: int, moment: datetime, *, step: str = ""
    ) -> Event:
        # A person's own logins and failures go to their record's slice: they see them.
        role = str(row.kind) if not row.profession else f"professional:{row.profession}"
        who = Actor(
            actor=str(row.account_id),
            source=source,
            purpose="authentication",
            role=role,
            rule=f"authn:{step}" if step else None,
        )
        return build_event(
            who, action, None, outcome, _patient_touched(row.patient_id), moment=moment
        )

    def _publish(self, events: list[Event]) -> None:
        if events:
            self.audit.append(events)


def _matching_step(totp: pyotp.TOTP, code: str, moment: datetime) -> int | None:
    """The time step (previous, current or next) whose code is ``code``, compared in constant time."""
    current = totp.timecode(moment)
    found = None
    for offset in (-1, 0, 1):
        if secrets.compare_digest(totp.at(moment, counter_offset=offset), code):
            found = current + offset
    return found


def _patient_touched(patient_id: str | None) -> list[Touched]:
    return [Touched("Patient", patient_id, None, patient_id)] if patient_id else []


def _clip_source(source: str) -> str:
    return (source or "unknown")[:_SOURCE_MAX_LEN]

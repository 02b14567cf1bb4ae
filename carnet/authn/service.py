"""Accounts of persons, professionals and operators: creation, passwords, TOTP, login checks.

What the database holds: the login only as a keyed blind hash (``login_hash``), the password as an
argon2id hash, the TOTP seed as AES-GCM ciphertext under the ``access`` data key. Every password or
TOTP attempt is a row of ``access_login_attempt`` (login hash, source address, time, success).

Guessing is bounded by ``LoginThrottle`` (carnet/authn/throttle.py): growing delays per login and
address, a looser ceiling per login that spares the addresses the owner signs in from, and a limit
per address. The rule is the same for logins that have no account, and a wrong password, an unknown
login, a disabled account or an account without a password all get the same answer after the same
argon2 work: nothing tells an attacker whether a login exists. An attempt is recorded as a failure
*before* the password is checked (and marked successful afterwards), so parallel requests cannot
overrun a limit.

``AccountService`` is the authn domain's main service. The others: ``SessionService``
(sessions.py, portal sessions), ``OAuthService`` (oauth.py, the SMART authorisation server),
``ClientService`` (clients.py), ``ProfessionalLogin`` and ``DevIdentityProvider`` (oidc.py),
``Authenticator`` (guard.py, a request's token or session -> ``Principal``), ``issue_access_token``
and ``principal_from_claims`` (tokens.py).
"""

from __future__ import annotations

import secrets
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyotp
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from carnet.audit.events import Actor, Event, Touched, build_event
from carnet.authn.models import access_account
from carnet.authn.passwords import Passwords, check_policy
from carnet.authn.throttle import SOURCE_MAX_FAILURES, SOURCE_WINDOW_MINUTES, LoginThrottle
from carnet.caller import PROFESSIONS, Kind, Principal
from carnet.crypto.service import CryptoService
from carnet.db.engine import reading, writing
from carnet.db.instants import Clock, parse_stamp, stamp, utc_now
from carnet.policy.models import access_alert
from carnet.settings import Settings

if TYPE_CHECKING:
    from carnet.audit.service import AuditService

TOTP_OWNER = "access"  # the data key that encrypts TOTP seeds
TOTP_ISSUER = "Carnet"
OPERATOR_SCOPES = frozenset({"system/*.*"})
_SOURCE_MAX_LEN = 64


class AccountError(Exception):
    """An account operation that cannot be done; ``error`` is an OAuth-style code, ``status`` the
    HTTP status an API answers with. Messages hold ids at most, never logins or passwords."""

    error = "invalid_request"
    status = 400


class LoginFailedError(AccountError):
    """Wrong login, wrong password, wrong code: one answer for all."""

    error = "invalid_grant"
    status = 401

    def __init__(self, message: str = "invalid login or password") -> None:
        super().__init__(message)


class LoginThrottledError(AccountError):
    """Too many failures for this login or from this address: try again in ``retry_after`` s."""

    error = "too_many_attempts"
    status = 429

    def __init__(
        self, retry_after: int = 1, message: str = "too many failed attempts; try again later"
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AccountExistsError(AccountError):
    error = "account_exists"
    status = 409


class UnknownAccountError(AccountError):
    """No such account, or a disabled one (callers issuing tokens treat them alike)."""

    error = "invalid_account"
    status = 404


@dataclass(frozen=True)
class Account:
    """An account as other modules see it: ids and states, never a secret or the login."""

    account_id: str
    kind: Kind
    patient_id: str | None
    rpps: str | None
    profession: str | None
    has_password: bool
    has_totp: bool
    disabled: bool
    failed_logins: int
    locked_until: datetime | None
    created_at: str


def normalise_login(login: str) -> str:
    """Logins (e-mail addresses, user names) are compared case- and width-insensitively."""
    return unicodedata.normalize("NFKC", login).strip().casefold()


@dataclass
class _Outcome:
    account_id: str | None = None
    error: AccountError | None = None
    events: list[Event] = field(default_factory=list)


class AccountService:
    """Creates accounts and checks passwords and second factors, with lockout and rate limits.

    ``audit`` (the AuditService) receives one event per login, failure, lockout and logout; ``now``
    is the clock (tests move it instead of sleeping); ``passwords`` the argon2id hasher.
    """

    def __init__(
        self,
        engine: Engine,
        crypto: CryptoService,
        settings: Settings,
        *,
        audit: AuditService | None = None,
        now: Clock = utc_now,
        passwords: Passwords | None = None,
        source_max_failures: int = SOURCE_MAX_FAILURES,
        source_window_minutes: float = SOURCE_WINDOW_MINUTES,
    ) -> None:
        self.engine = engine
        self.crypto = crypto
        self.settings = settings
        self.audit = audit
        self.now = now
        self.passwords = passwords or Passwords()
        self.throttle = LoginThrottle(
            settings,
            source_max_failures=source_max_failures,
            source_window_minutes=source_window_minutes,
        )
        self.lockout_window = timedelta(minutes=settings.lockout_minutes)

    # -- creation ----------------------------------------------------------------------------

    def totp_key(self, account_id: str) -> str:
        """What stands for an account's second-factor attempts in ``access_login_attempt``."""
        return self.crypto.blind.digest("login-totp", account_id)

    def login_hash(self, login: str) -> str:
        """The blind hash that stands for a login in the database (its own hash domain, so it
        cannot be matched against the FHIR search indexes)."""
        return self.crypto.blind.digest("login", normalise_login(login))

    def create_person(self, login: str, password: str, patient_id: str) -> str:
        """A citizen's account for their own Patient record; returns the account id."""
        if not patient_id:
            raise AccountError("a person's account names the person's Patient record")
        return self._create(Kind.PERSON, login, password, patient_id=patient_id)

    def create_professional(
        self, login: str, password: str | None, rpps: str, profession: str
    ) -> str:
        """A health professional's account; ``password`` None: OpenID Connect login only."""
        if not rpps or len(rpps) > 32 or not rpps.isalnum():
            raise AccountError("an RPPS number is 1 to 32 letters or digits")
        if profession not in PROFESSIONS:
            raise AccountError(f"unknown profession (known: {', '.join(PROFESSIONS)})")
        if self.find_by_rpps(rpps) is not None:
            raise AccountExistsError("this RPPS number already has an account")
        return self._create(Kind.PROFESSIONAL, login, password, rpps=rpps, profession=profession)

    def create_operator(self, login: str, password: str) -> str:
        """An operator of the platform (system/*.* scopes)."""
        return self._create(Kind.OPERATOR, login, password)

    def _create(
        self,
        kind: Kind,
        login: str,
        password: str | None,
        *,
        patient_id: str | None = None,
        rpps: str | None = None,
        profession: str | None = None,
    ) -> str:
        if not normalise_login(login):
            raise AccountError("a login is not empty")
        if password is not None:
            check_policy(password, login)
        account_id = str(uuid.uuid4())
        try:
            with writing(self.engine) as conn:
                conn.execute(
                    insert(access_account).values(
                        account_id=account_id,
                        kind=kind.value,
                        login_hash=self.login_hash(login),
                        password_hash=None if password is None else self.passwords.hash(password),
                        patient_id=patient_id,
                        rpps=rpps,
                        profession=profession,
                        failed_logins=0,
                        disabled=False,
                        created_at=stamp(self.now()),
                    )
                )
        except IntegrityError:
            raise AccountExistsError("an account with this login already exists") from None
        return account_id

    def set_password(self, account_id: str, password: str, login: str | None = None) -> None:
        """Replace an account's password (policy checked; ``login`` for the not-the-login rule)."""
        check_policy(password, login)
        with writing(self.engine) as conn:
            done = conn.execute(
                update(access_account)
                .where(access_account.c.account_id == account_id)
                .values(password_hash=self.passwords.hash(password))
            ).rowcount
        if not done:
            raise UnknownAccountError(f"no account {account_id}")

    def set_disabled(self, account_id: str, disabled: bool = True) -> None:
        """Disable (or enable again) an account: its sessions stop working at the next request."""
        with writing(self.engine) as conn:
            done = conn.execute(
                update(access_account)
                .where(access_account.c.account_id == account_id)
                .values(disabled=disabled)
            ).rowcount
        if not done:
            raise UnknownAccountError(f"no account {account_id}")

    def enroll_totp(self, account_id: str) -> str:
        """Give the account a new TOTP seed (RFC 6238, SHA-1, 6 digits, 30 s) and return its
        otpauth:// URI, once: the seed is stored encrypted and never shown again."""
        seed = pyotp.random_base32(length=32)  # 160 bits
        with writing(self.engine) as conn:
            try:
                blob = self.crypto.data_keys.encrypt(
                    conn, TOTP_OWNER, seed.encode(), _totp_aad(account_id)
                )
                done = conn.execute(
                    update(access_account)
                    .where(access_account.c.account_id == account_id)
                    .values(totp_secret=blob, totp_last_step=None)
                ).rowcount
            finally:
                self.crypto.data_keys.after_rollback(conn)  # key material ends with the unit
            if not done:
                raise UnknownAccountError(f"no account {account_id}")
        return pyotp.TOTP(seed).provisioning_uri(name=account_id, issuer_name=TOTP_ISSUER)

    # -- lookups ------------------------------------------------------------------------------

    def account(self, account_id: str) -> Account | None:
        with reading(self.engine) as conn:
            row = conn.execute(
                select(access_account).where(access_account.c.account_id == account_id)
            ).first()
        return None if row is None else _account(row)

    def find_by_rpps(self, rpps: str) -> Account | None:
        """The professional account of an RPPS number (the OpenID Connect login's lookup)."""
        with reading(self.engine) as conn:
            row = conn.execute(
                select(access_account)
                .where(access_account.c.rpps == rpps, access_account.c.kind == Kind.PROFESSIONAL)
                .order_by(access_account.c.created_at)
                .limit(1)
            ).first()
        return None if row is None else _account(row)

    def find_by_login(self, login: str) -> Account | None:
        """The account of a login (operators' tools; the login API never tells)."""
        with reading(self.engine) as conn:
            row = conn.execute(
                select(access_account).where(access_account.c.login_hash == self.login_hash(login))
            ).first()
        return None if row is None else _account(row)

    def principal_for(self, account_id: str) -> Principal:
        """The caller an account acts as; UnknownAccountError if it does not exist or is disabled."""
        found = self.account(account_id)
        if found is None or found.disabled:
            raise UnknownAccountError(f"no usable account {account_id}")
        if found.kind is Kind.PERSON:
            return Principal(Kind.PERSON, found.account_id, patient_id=found.patient_id)
        if found.kind is Kind.PROFESSIONAL:
            return Principal(
                Kind.PROFESSIONAL, found.account_id, rpps=found.rpps, profession=found.profession
            )
        if found.kind is Kind.OPERATOR:
            return Principal(Kind.OPERATOR, found.account_id, scopes=OPERATOR_SCOPES)
        raise UnknownAccountError(f"account {account_id} has no usable kind")

    # -- login checks -------------------------------------------------------------------------

    def verify_password_login(self, login: str, password: str, source: str) -> str:
        """The account id for a right login and password. LoginFailedError for anything wrong (same
        message whether the login exists or not), LoginThrottledError when this login or this source
        has failed too often. Every attempt is recorded and audited."""
        return self._check_password(self.login_hash(login), password, source, "login")

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
            familiar = None if row is None else self.totp_key(row.account_id)
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
        key = self.totp_key(account_id)
        wait = self.throttle.wait(conn, key, source, moment)
        if wait:
            return _Outcome(
                error=LoginThrottledError(wait), events=self._throttled_events(row, source, moment)
            )
        attempt = self.throttle.record(conn, key, source, moment)
        step = None
        if row.totp_secret is not None and not row.disabled and code.isdigit():
            seed = self.crypto.data_keys.decrypt(
                conn, TOTP_OWNER, row.totp_secret, _totp_aad(account_id)
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

    def logged_out(self, account_id: str, source: str) -> None:
        """Audit a logout (the session service revoked the session)."""
        found = self.account(account_id)
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
        if self.audit is not None and events:
            self.audit.append(events)


def _account(row: Any) -> Account:
    return Account(
        account_id=row.account_id,
        kind=Kind(row.kind),
        patient_id=row.patient_id,
        rpps=row.rpps,
        profession=row.profession,
        has_password=row.password_hash is not None,
        has_totp=row.totp_secret is not None,
        disabled=bool(row.disabled),
        failed_logins=int(row.failed_logins or 0),
        locked_until=parse_stamp(row.locked_until) if row.locked_until else None,
        created_at=row.created_at,
    )


def _totp_aad(account_id: str) -> bytes:
    return f"access_account/{account_id}/totp".encode()


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

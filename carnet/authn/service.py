"""Accounts of persons, professionals and operators: creation, passwords, TOTP enrolment, lookups.

What the database holds: the login only as a keyed blind hash (``login_hash``), the password as an
argon2id hash, the TOTP seed as AES-GCM ciphertext under the ``access`` data key.

``AccountService`` is the authn domain's main service: the accounts' lifecycle. The others:
``LoginVerifier`` (login.py, passwords and second factors checked, with lockout and backoff),
``SessionService`` (sessions.py, portal sessions), ``OAuthService`` (oauth.py, the SMART
authorisation server), ``ClientService`` (clients.py), ``ProfessionalLogin`` and
``DevIdentityProvider`` (oidc.py), ``Authenticator`` (guard.py, a request's token or session ->
``Principal``), ``issue_access_token`` and ``principal_from_claims`` (tokens.py).
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyotp
from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from carnet.authn.models import access_account
from carnet.authn.passwords import Passwords, check_policy
from carnet.caller import PROFESSIONS, Kind, Principal
from carnet.crypto.service import CryptoService
from carnet.db.engine import reading, writing
from carnet.db.instants import Clock, parse_stamp, stamp, utc_now
from carnet.settings import Settings

TOTP_OWNER = "access"  # the data key that encrypts TOTP seeds
TOTP_ISSUER = "Carnet"
OPERATOR_SCOPES = frozenset({"system/*.*"})


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


class SpaceHasAccountError(AccountError):
    """One person account per space: the Patient named already has its person's account (a
    code, the desk or a tool is no second way into the record)."""

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
    totp_confirmed: bool = False  # a code of its second factor was accepted since enrolment


@dataclass(frozen=True)
class NewAccount:
    """An account checked and its password hashed, not yet stored (``AccountService.insert_in``)."""

    kind: Kind
    login_hash: str
    password_hash: str | None
    rpps: str | None = None
    profession: str | None = None


def normalise_login(login: str) -> str:
    """Logins (e-mail addresses, user names) are compared case- and width-insensitively."""
    return unicodedata.normalize("NFKC", login).strip().casefold()


class AccountService:
    """Creates accounts, sets their passwords and second factors, finds them, and says which
    caller an account acts as. Checking what a caller presents at login is ``LoginVerifier``'s
    (login.py).

    ``now`` is the clock (tests move it instead of sleeping); ``passwords`` the argon2id hasher.
    """

    def __init__(
        self,
        engine: Engine,
        crypto: CryptoService,
        settings: Settings,
        *,
        now: Clock = utc_now,
        passwords: Passwords | None = None,
    ) -> None:
        self.engine = engine
        self.crypto = crypto
        self.settings = settings
        self.now = now
        self.passwords = passwords or Passwords.for_profile(settings.password_hash_profile)

    # -- creation ----------------------------------------------------------------------------

    def totp_key(self, account_id: str) -> str:
        """What stands for an account's second-factor attempts in ``access_login_attempt``."""
        return self.crypto.blind.digest("login-totp", account_id)

    def reset_key(self, login: str) -> str:
        """What stands for a login's forgotten-password requests in ``access_login_attempt``
        (its own hash domain: requests are throttled apart from the login's sign-ins)."""
        return self.crypto.blind.digest("login-reset", normalise_login(login))

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
        new = self._new(kind, login, password, rpps=rpps, profession=profession)
        with writing(self.engine) as conn:
            return self.insert_in(conn, new, patient_id=patient_id)

    def new_person(self, login: str, password: str) -> NewAccount:
        """A person's account checked (login, password policy) and its password hashed, not yet
        stored: the argon2 work runs here, outside any transaction, so that the one-time code
        that opens the account is claimed and the account inserted in one short transaction
        (``insert_in``, carnet/record/activation.py ``spend``)."""
        return self._new(Kind.PERSON, login, password)

    def _new(
        self,
        kind: Kind,
        login: str,
        password: str | None,
        *,
        rpps: str | None = None,
        profession: str | None = None,
    ) -> NewAccount:
        if not normalise_login(login):
            raise AccountError("a login is not empty")
        if password is not None:
            check_policy(password, login)
        return NewAccount(
            kind=kind,
            login_hash=self.login_hash(login),
            password_hash=None if password is None else self.passwords.hash(password),
            rpps=rpps,
            profession=profession,
        )

    def insert_in(self, conn: Connection, new: NewAccount, *, patient_id: str | None) -> str:
        """Store ``new`` (for ``patient_id``, a person's) in the caller's transaction; returns
        the account id. AccountExistsError if the login is taken, SpaceHasAccountError if the
        Patient already has its person account (one person account per space: checked here, in
        the transaction that inserts, and held by the unique index ``ux_access_account_person``
        against an insertion racing this one); the caller's transaction is then to be rolled
        back (PostgreSQL has aborted it)."""
        if new.kind is Kind.PERSON:
            if not patient_id:
                raise AccountError("a person's account names the person's Patient record")
            if _person_row(conn, patient_id) is not None:
                raise _space_has_account(patient_id)
        account_id = str(uuid.uuid4())
        try:
            conn.execute(
                insert(access_account).values(
                    account_id=account_id,
                    kind=new.kind.value,
                    login_hash=new.login_hash,
                    password_hash=new.password_hash,
                    patient_id=patient_id,
                    rpps=new.rpps,
                    profession=new.profession,
                    failed_logins=0,
                    disabled=False,
                    created_at=stamp(self.now()),
                )
            )
        except IntegrityError as exc:
            if patient_id and _PERSON_INDEX_HINTS & set(str(exc.orig).replace('"', " ").split()):
                raise _space_has_account(patient_id) from None  # raced: the index said no
            raise AccountExistsError("an account with this login already exists") from None
        return account_id

    def set_password(self, account_id: str, password: str, login: str | None = None) -> None:
        """Replace an account's password (policy checked; ``login`` for the not-the-login rule)."""
        hashed = self.new_password(password, login)
        with writing(self.engine) as conn:
            self.set_password_in(conn, account_id, hashed)

    def new_password(self, password: str, login: str | None = None) -> str:
        """A new password checked against the policy and hashed (argon2, outside any
        transaction), for ``set_password_in``."""
        check_policy(password, login)
        return self.passwords.hash(password)

    def set_password_in(self, conn: Connection, account_id: str, password_hash: str) -> None:
        """Store a hash from ``new_password`` in the caller's transaction (a reset code's claim)."""
        done = conn.execute(
            update(access_account)
            .where(access_account.c.account_id == account_id)
            .values(password_hash=password_hash)
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
        with writing(self.engine) as conn:
            return self.enroll_totp_in(conn, account_id)

    def enroll_totp_in(self, conn: Connection, account_id: str, *, unfinished: bool = False) -> str:
        """``enroll_totp`` in the caller's transaction. ``unfinished``: only for a person's
        account whose activation was left unfinished (``unfinished_activation``), checked in
        this transaction (AccountError otherwise, to roll the caller's code claim back)."""
        seed = pyotp.random_base32(length=32)  # 160 bits
        which = access_account.c.account_id == account_id
        if unfinished:
            which = and_(which, *_UNFINISHED)
        try:
            blob = self.crypto.data_keys.encrypt(
                conn, TOTP_OWNER, seed.encode(), totp_aad(account_id)
            )
            done = conn.execute(
                update(access_account).where(which).values(totp_secret=blob, totp_last_step=None)
            ).rowcount
        finally:
            self.crypto.data_keys.after_rollback(conn)  # key material ends with the unit
        if not done:
            raise UnknownAccountError(f"no account {account_id} to enrol")
        return pyotp.TOTP(seed).provisioning_uri(name=account_id, issuer_name=TOTP_ISSUER)

    @staticmethod
    def unfinished_activation(account: Account) -> bool:
        """A person's account left at the activation's last step: usable, with a password and
        a second factor enrolled but never confirmed (no code of it ever accepted). A new activation code for
        its space, with the account's own login and password, enrols that account's second
        factor again (carnet/web/signin/activation.py): without it, the person is locked out
        (the code spent, a new one refused since the space has its account, the sign-in asking
        for a code from a seed they never scanned). Nothing else: no second account, no new
        password, and a second factor once confirmed is never replaced this way."""
        return (
            account.kind is Kind.PERSON
            and not account.disabled
            and account.has_password
            and account.has_totp
            and not account.totp_confirmed
        )

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

    def person_account_of(self, patient_id: str) -> Account | None:
        """The person's account of a Patient record, if it has one (the activation pages ask
        before showing the account form; ``insert_in`` holds the rule itself)."""
        with reading(self.engine) as conn:
            row = _person_row(conn, patient_id)
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


# The same, in SQL (``enroll_totp_in``'s condition, checked in the code's transaction).
_UNFINISHED = (
    access_account.c.kind == Kind.PERSON,
    access_account.c.disabled.is_(False),
    access_account.c.password_hash.is_not(None),
    access_account.c.totp_secret.is_not(None),
    access_account.c.totp_last_step.is_(None),
)

# What an IntegrityError names when the person-account index refused the row: PostgreSQL the
# index, SQLite the column (the login's unique constraint names ``login_hash``).
_PERSON_INDEX_HINTS = frozenset({"ux_access_account_person", "access_account.patient_id"})


def _space_has_account(patient_id: str) -> SpaceHasAccountError:
    return SpaceHasAccountError(f"Patient/{patient_id} already has a person account")


def _person_row(conn: Connection, patient_id: str) -> Any:
    return conn.execute(
        select(access_account).where(
            access_account.c.patient_id == patient_id, access_account.c.kind == Kind.PERSON
        )
    ).first()


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
        totp_confirmed=row.totp_last_step is not None,
    )


def totp_aad(account_id: str) -> bytes:
    """What binds an encrypted TOTP seed to its account (AES-GCM associated data)."""
    return f"access_account/{account_id}/totp".encode()

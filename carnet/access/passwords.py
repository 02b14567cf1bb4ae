"""Passwords: argon2id hashes (argon2-cffi) and the minimum policy a new password must meet.

Hashes are PHC strings (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``) with the RFC 9106
"low memory" parameters by default (64 MiB, 3 passes, 4 lanes). A hash made with older parameters
still verifies and is reported by ``needs_rehash`` so a successful login can upgrade it.
"""

from __future__ import annotations

import unicodedata
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # hashing megabytes of "password" is a denial of service, not a password


class PasswordPolicyError(ValueError):
    """A new password that does not meet the policy; the message says which rule, never the value."""


def _canonical(password: str) -> str:
    # The same password typed on two keyboards (composed or decomposed accents) is the same.
    return unicodedata.normalize("NFC", password)


def check_policy(password: str, login: str | None = None) -> None:
    """Refuse a password shorter than ``MIN_LENGTH`` characters, absurdly long, or equal to (or
    containing) the login."""
    value = _canonical(password)
    if len(value) < MIN_LENGTH:
        raise PasswordPolicyError(f"a password has at least {MIN_LENGTH} characters")
    if len(value) > MAX_LENGTH:
        raise PasswordPolicyError(f"a password has at most {MAX_LENGTH} characters")
    if not value.strip():
        raise PasswordPolicyError("a password is not only spaces")
    if login:
        folded_login = _canonical(login).casefold().strip()
        if folded_login and folded_login in value.casefold():
            raise PasswordPolicyError("a password does not contain the login")


class Passwords:
    """Hashes and verifies passwords with argon2id."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile

    def hash(self, password: str) -> str:
        return self._hasher.hash(_canonical(password))

    def verify(self, password_hash: str, password: str) -> bool:
        """True when ``password`` matches; False for a wrong password or a malformed hash."""
        if len(password) > MAX_LENGTH:
            self.burn()
            return False
        try:
            return self._hasher.verify(password_hash, _canonical(password))
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    @cached_property
    def _dummy_hash(self) -> str:
        return self._hasher.hash("carnet-no-such-account")

    def burn(self) -> None:
        """Spend the time of one verification (an unknown login answers as slowly as a known one)."""
        self.verify(self._dummy_hash, "not-the-password")

"""Passwords: argon2id hashes (argon2-cffi) and the minimum policy a new password must meet.

Hashes are PHC strings (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``) with the RFC 9106
"low memory" parameters by default (64 MiB, 3 passes, 4 lanes). A hash made with older parameters
still verifies and is reported by ``needs_rehash`` so a successful login can upgrade it.

A new password must pass ``check_policy``: NIST SP 800-63B's rules (length, no breached or common
password, no repetitive or sequential string, nothing from the context such as the login), with the
breach list and the guess estimate of the ``zxcvbn`` package, offline.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache, cached_property
from itertools import pairwise

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
    """Refuse a new password that is too short or absurdly long, only spaces, equal to (or
    containing) the login, one character or block repeated, a run of consecutive characters, one of
    the passwords most used in breaches, or otherwise easy to guess (NIST SP 800-63B 3.1.1.2)."""
    value = _canonical(password)
    if len(value) < MIN_LENGTH:
        raise PasswordPolicyError(f"a password has at least {MIN_LENGTH} characters")
    if len(value) > MAX_LENGTH:
        raise PasswordPolicyError(f"a password has at most {MAX_LENGTH} characters")
    if not value.strip():
        raise PasswordPolicyError("a password is not only spaces")
    folded = value.casefold()
    folded_login = _canonical(login).casefold().strip() if login else ""
    if folded_login and folded_login in folded:
        raise PasswordPolicyError("a password does not contain the login")
    if len(_without_context(folded, folded_login)) < _MIN_OWN_LENGTH:
        raise PasswordPolicyError("a password is not built on the login or the service's name")
    if _repetitive(folded):
        raise PasswordPolicyError("a password is not one character or block repeated")
    if _sequential(folded):
        raise PasswordPolicyError("a password is not a run of consecutive characters")
    if folded in _common_passwords():
        raise PasswordPolicyError("a password is not one of the passwords most used in breaches")
    if len(value) <= _ESTIMATE_MAX_LENGTH and _guessable(value, folded_login):
        raise PasswordPolicyError(
            "a password is too easy to guess: common words, names, dates, keyboard patterns "
            "or the login put together"
        )


_ESTIMATE_MAX_LENGTH = 72  # zxcvbn's own bound; longer ones are judged by the rules above
_MIN_GUESSES = 10**8  # zxcvbn score 3: "safely unguessable" against online attacks, and beyond
_MIN_OWN_LENGTH = 8  # characters left once the login's parts and the service's name are taken out
_CONTEXT_WORDS = ("carnet", "sante", "santé")  # words anyone would try on this service


def _context_words(folded_login: str) -> list[str]:
    """The login, its parts (``jeanne``, ``martin`` of ``jeanne.martin@...``) and the service's
    name: what an attacker who knows the account tries first."""
    parts = [folded_login, *re.split(r"[\W_]+", folded_login), *_CONTEXT_WORDS]
    return sorted({p for p in parts if len(p) >= 3}, key=len, reverse=True)


def _without_context(folded: str, folded_login: str) -> str:
    for word in _context_words(folded_login):
        folded = folded.replace(word, "")
    return folded


def _repetitive(folded: str) -> bool:
    """One character or one block repeated (``aaaaaaaaaaaa``, ``abcabcabcabc``), or nearly so:
    at most three distinct characters."""
    if len(set(folded)) <= 3:
        return True
    size = len(folded)
    return any(
        size % block == 0 and folded[:block] * (size // block) == folded
        for block in range(1, size // 2 + 1)
    )


def _sequential(folded: str) -> bool:
    """Characters that go up or down by one all the way (``abcdefghijkl``, ``987654321098``:
    digits wrap around)."""

    def step(a: str, b: str) -> int:
        if a.isdigit() and b.isdigit():
            return (int(b) - int(a) + 5) % 10 - 5  # 9 -> 0 is +1, 0 -> 9 is -1
        return ord(b) - ord(a)

    steps = {step(a, b) for a, b in pairwise(folded)}
    return len(steps) == 1 and steps <= {1, -1}


@cache
def _common_passwords() -> frozenset[str]:
    """The 30,000 passwords most found in breaches (zxcvbn's list, from Xato's 10 million
    leaked passwords), shipped with the package: no network."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(word.casefold() for word in FREQUENCY_LISTS["passwords"])


def _guessable(value: str, folded_login: str) -> bool:
    """zxcvbn's estimate (dictionaries of breached passwords, words, names; dates, keyboard walks,
    repeats, l33t) is under ``_MIN_GUESSES``, with the login and its parts as known words."""
    from zxcvbn import zxcvbn

    estimate = zxcvbn(value, user_inputs=_context_words(folded_login))
    return bool(float(estimate["guesses"]) < _MIN_GUESSES)


# The settings' password_hash_profile: the product's (argon2-cffi's default is RFC 9106's
# low-memory profile) and one for test suites, where hundreds of logins run on shared cores.
_PROFILES = {
    "rfc9106": lambda: PasswordHasher(),
    "test-only-weak": lambda: PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1),
}


class Passwords:
    """Hashes and verifies passwords with argon2id."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile

    @classmethod
    def for_profile(cls, profile: str) -> Passwords:
        """New hashes with the parameters of a ``password_hash_profile`` setting."""
        return cls(_PROFILES[profile]())

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

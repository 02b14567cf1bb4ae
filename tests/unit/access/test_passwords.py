"""argon2id hashes and the password policy."""

from __future__ import annotations

import unicodedata

import pytest

from carnet.access.passwords import MIN_LENGTH, PasswordPolicyError, Passwords, check_policy


def test_hash_is_argon2id_with_rfc9106_parameters_and_a_random_salt() -> None:
    passwords = Passwords()
    first = passwords.hash("une phrase de passe")
    second = passwords.hash("une phrase de passe")
    assert first.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert first != second  # salted
    assert "une phrase" not in first
    assert passwords.verify(first, "une phrase de passe")
    assert not passwords.verify(first, "une phrase de passE")
    assert not passwords.needs_rehash(first)


def test_malformed_hash_or_huge_password_is_a_mismatch_not_an_error() -> None:
    passwords = Passwords()
    assert not passwords.verify("not a hash", "whatever password")
    assert not passwords.verify(passwords.hash("short one ok"), "x" * 5000)
    assert passwords.needs_rehash("not a hash")


def test_composed_and_decomposed_accents_are_the_same_password() -> None:
    passwords = Passwords()
    stored = passwords.hash("mot de passe à Noël")
    assert passwords.verify(stored, unicodedata.normalize("NFD", "mot de passe à Noël"))


@pytest.mark.parametrize(
    ("password", "login", "rule"),
    [
        ("x" * (MIN_LENGTH - 1), None, "at least"),
        (" " * 20, None, "only spaces"),
        ("jeanne.martin@exemple.fr", "jeanne.martin@exemple.fr", "login"),
        ("XXJeanne.Martin@Exemple.frXX", "jeanne.martin@exemple.fr", "login"),
    ],
)
def test_policy_refuses(password: str, login: str | None, rule: str) -> None:
    with pytest.raises(PasswordPolicyError, match=rule) as caught:
        check_policy(password, login)
    assert password.strip() not in str(caught.value) or not password.strip()


def test_policy_accepts_a_long_enough_password() -> None:
    check_policy("x" * MIN_LENGTH, "jeanne")
    check_policy("correct horse battery staple", "jeanne.martin@exemple.fr")

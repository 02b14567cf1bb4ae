"""argon2id hashes and the password policy."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from carnet.app import Services
from carnet.authn.passwords import MIN_LENGTH, PasswordPolicyError, Passwords, check_policy
from carnet.authn.service import AccountService
from carnet.demo.accounts import DEMO_PASSWORD, PARENT_LOGIN, PATIENT_LOGIN
from carnet.settings import Settings


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


def test_the_product_hashes_new_passwords_with_the_rfc9106_profile_by_default(
    services: Services, tmp_path: Path
) -> None:
    """The suite runs with the weak test profile (tests/conftest.py): the product's default, what
    an operator gets without setting anything, must stay the strong one."""
    product = Settings.from_env({}, data_dir=str(tmp_path / "product"))
    assert product.password_hash_profile == "rfc9106"
    accounts = AccountService(services.engine, services.crypto, product)
    assert accounts.passwords.hash("une phrase de passe").startswith(
        "$argon2id$v=19$m=65536,t=3,p=4$"
    )


def test_the_test_profile_is_set_only_by_its_setting_and_still_verifies_strong_hashes(
    services: Services,
) -> None:
    assert services.settings.password_hash_profile == "test-only-weak"
    weak = services.accounts.passwords
    assert weak.hash("une phrase de passe").startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    strong = Passwords().hash("une phrase de passe")
    assert weak.verify(strong, "une phrase de passe")
    assert weak.needs_rehash(strong)


def test_an_unknown_password_hash_profile_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="password_hash_profile is one of rfc9106, test-only-weak"):
        Settings.from_env({"CARNET_PASSWORD_HASH_PROFILE": "fast"})


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


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("aaaaaaaaaaaa", "repeated"),
        (
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "repeated",
        ),
        ("abcabcabcabc", "repeated"),
        ("motdepasse" * 8, "repeated"),  # beyond the estimator's 72 characters
        ("abababababab1", "repeated"),  # three distinct characters
        ("abcdefghijkl", "consecutive"),
        ("123456789012", "consecutive"),
        ("zyxwvutsrqpo", "consecutive"),
        ("1q2w3e4r5t6y", "breaches"),
        ("qwertyuiopasdf", "guess"),
        ("password1234", "breaches"),
        ("motdepasse123", "guess"),
        ("iloveyou12345", "guess"),
        ("P@ssw0rd2024!", "guess"),
    ],
)
def test_trivial_and_common_passwords_are_refused(password: str, rule: str) -> None:
    with pytest.raises(PasswordPolicyError, match=rule) as caught:
        check_policy(password, "someone@exemple.fr")
    assert password not in str(caught.value)  # the message names the rule, never the value


def test_a_password_from_the_breach_list_is_refused_by_name() -> None:
    # 12-character entries of the list zxcvbn ships (passwords found in breaches).
    with pytest.raises(PasswordPolicyError, match="most used in breaches"):
        check_policy("leavemealone")
    with pytest.raises(PasswordPolicyError, match="most used in breaches"):
        check_policy("PASSWORD1234")


def test_a_password_built_on_the_login_or_the_service_name_is_refused() -> None:
    for password in ("Martin2026!!", "JeanneMartin75", "jeanne.m.1985", "CarnetSanté2026"):
        with pytest.raises(PasswordPolicyError, match="login or the service"):
            check_policy(password, "jeanne.martin@exemple.fr")


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "une phrase de passe",
        "mot de passe à Noël",
        "k7#Vq2!mZp9w",
        "Le chat de Zoé dort sous le piano",
        "a long passphrase that is way longer than seventy-two characters, still fine",
    ],
)
def test_policy_accepts_a_long_enough_unguessable_password(password: str) -> None:
    check_policy(password, "jeanne.martin@exemple.fr")


def test_the_demo_password_meets_the_policy_for_the_demo_logins() -> None:
    for login in (PATIENT_LOGIN, PARENT_LOGIN):
        check_policy(DEMO_PASSWORD, login)
    with pytest.raises(PasswordPolicyError, match="login or the service"):
        check_policy("carnet-demo-2026", PATIENT_LOGIN)  # the former one: built on the login

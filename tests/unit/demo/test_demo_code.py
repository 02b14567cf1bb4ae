"""`carnet demo-code SECRET` prints the code a demo account's second factor accepts now, and
refuses a text that is not a TOTP secret."""

from __future__ import annotations

import pyotp

from tests.support.cli import invoke


def test_demo_code_prints_the_current_code_of_the_printed_secret() -> None:
    secret = pyotp.random_base32(length=32)
    result = invoke(["demo-code", secret])
    assert result.exit_code == 0, result.output
    assert pyotp.TOTP(secret).verify(result.output.strip(), valid_window=1)


def test_demo_code_refuses_a_text_that_is_not_a_totp_secret() -> None:
    for wrong in ("not base32!", "ABC"):
        result = invoke(["demo-code", wrong])
        assert result.exit_code == 1
        assert "error" in result.output

"""The current second-factor code of a demo account, for whoever has no authenticator app at hand
(``carnet demo-code SECRET`` with the TOTP secret ``carnet demo`` printed; demo only: synthetic
people on a loopback server)."""

from __future__ import annotations

import binascii

import pyotp


def current_code(secret: str) -> str:
    """The RFC 6238 code (SHA-1, 6 digits, 30 s, as AccountService enrols) valid now; ValueError
    for a text that is not a base32 secret of at least 112 bits."""
    try:
        return pyotp.TOTP(secret.replace(" ", "").upper()).now()
    except binascii.Error as exc:  # not base32
        raise ValueError("not a TOTP secret (base32 expected)") from exc

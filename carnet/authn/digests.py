"""Digests of random bearer values (session ids, CSRF tokens, authorisation codes, refresh tokens).

The database keeps only the SHA-256 of such a value, so a copy of it opens nothing. Passwords are
not bearer values: they get argon2id hashes (carnet/authn/passwords.py).
"""

from __future__ import annotations

from hashlib import sha256


def digest(secret: str) -> str:
    """SHA-256 of a random bearer value (session id, CSRF token): what the database keeps."""
    return sha256(secret.encode()).hexdigest()

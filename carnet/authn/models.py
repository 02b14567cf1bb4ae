"""Tables of authentication: accounts, portal sessions, login attempts, OAuth clients, codes,
refresh tokens, grants and revoked tokens (the policy decision point's are in carnet/policy/models.py).

Identifying values (logins) are stored as keyed blind hashes; secrets (TOTP seeds) as ciphertext
from ``carnet.crypto``; session ids, authorisation codes and refresh tokens as SHA-256 digests, so a
copy of the database lets no one log in. Times are UTC ISO strings, which sort as text. Table names
keep their ``access_`` prefix from before the split (no migration for a move).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from carnet.db.metadata import metadata

# -- accounts and sessions ----------------------------------------------------------------------

access_account = Table(
    "access_account",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),  # person | professional | operator
    Column("login_hash", String(32), nullable=False, unique=True),  # blind hash of the login
    Column("password_hash", String(255), nullable=True),  # argon2id
    Column("totp_secret", LargeBinary, nullable=True),  # ciphertext (crypto.envelope, "access")
    Column("totp_last_step", Integer, nullable=True),  # last accepted TOTP time step (no replay)
    Column("patient_id", String(64), nullable=True),  # a person's own Patient resource
    Column("rpps", String(32), nullable=True),  # a professional's RPPS number
    Column("profession", String(32), nullable=True),  # physician, nurse, pharmacist, ...
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", String(32), nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", String(32), nullable=False),
)
Index("ix_access_account_patient", access_account.c.patient_id)
# One person account per space, where it cannot be raced (migration 0028): a second person
# account for a Patient is refused by the database itself, whoever inserts it (the activation
# pages, `carnet accounts add-person`); other kinds may name no Patient or share one.
_PERSON = access_account.c.kind == "person"
Index(
    "ux_access_account_person",
    access_account.c.patient_id,
    unique=True,
    sqlite_where=_PERSON,
    postgresql_where=_PERSON,
)
Index("ix_access_account_rpps", access_account.c.rpps)

access_session = Table(
    "access_session",
    metadata,
    Column("session_hash", String(64), primary_key=True),  # sha256 of the cookie value
    Column("account_id", String(36), nullable=False),
    Column("csrf_hash", String(64), nullable=False),
    Column("second_factor", Boolean, nullable=False, default=False),  # TOTP passed
    Column("created_at", String(32), nullable=False),
    Column("expires_at", String(32), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)
Index("ix_access_session_account", access_session.c.account_id)

access_login_attempt = Table(
    "access_login_attempt",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("login_hash", String(32), nullable=False),
    Column("source", String(64), nullable=False),
    Column("at", String(32), nullable=False),
    Column("success", Boolean, nullable=False),
)
Index("ix_access_login_attempt_login", access_login_attempt.c.login_hash, access_login_attempt.c.at)
Index("ix_access_login_attempt_source", access_login_attempt.c.source, access_login_attempt.c.at)

# -- OAuth 2.0 / SMART on FHIR ------------------------------------------------------------------

access_client = Table(
    "access_client",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # public | confidential | backend
    Column("name", String(200), nullable=False),
    Column("redirect_uris", Text, nullable=False, default="[]"),  # JSON list
    Column("scopes", Text, nullable=False),  # the most this client may ever be granted
    Column("secret_hash", String(255), nullable=True),  # argon2id, confidential clients
    Column("jwks", Text, nullable=True),  # public keys for private_key_jwt (backend services)
    Column("created_at", String(32), nullable=False),
)

access_auth_code = Table(
    "access_auth_code",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("account_id", String(36), nullable=False),
    Column("patient_id", String(64), nullable=True),  # launch/patient context
    Column("scopes", Text, nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("code_challenge", String(128), nullable=False),  # PKCE S256
    Column("nonce", String(255), nullable=True),
    Column("expires_at", String(32), nullable=False),
    Column("used", Boolean, nullable=False, default=False),
)

access_refresh_token = Table(
    "access_refresh_token",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("account_id", String(36), nullable=False),
    Column("patient_id", String(64), nullable=True),
    Column("scopes", Text, nullable=False),
    Column("expires_at", String(32), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("family_id", String(64), nullable=False),  # one per authorisation: replay revokes it
)
Index("ix_access_refresh_token_client", access_refresh_token.c.client_id)
Index("ix_access_refresh_token_family", access_refresh_token.c.family_id)

access_grant = Table(
    "access_grant",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("client_id", String(64), primary_key=True),
    Column("scopes", Text, nullable=False),
    Column("granted_at", String(32), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

access_revoked_token = Table(
    "access_revoked_token",
    metadata,
    Column("jti", String(64), primary_key=True),  # an access token revoked before it expires
    Column("expires_at", String(32), nullable=False),
)

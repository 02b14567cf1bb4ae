"""Authentication (accounts, sessions, OAuth clients, codes, tokens, grants) and the policy
decision point"s tables (rules, care relationships, blocks, visibility flags, preferences,
break-glass, alerts).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_account",
        sa.Column("account_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("login_hash", sa.String(32), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("totp_secret", sa.LargeBinary, nullable=True),
        sa.Column("totp_last_step", sa.Integer, nullable=True),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("rpps", sa.String(32), nullable=True),
        sa.Column("profession", sa.String(32), nullable=True),
        sa.Column("failed_logins", sa.Integer, nullable=False),
        sa.Column("locked_until", sa.String(32), nullable=True),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_access_account_rpps", "access_account", ["rpps"])
    op.create_index("ix_access_account_patient", "access_account", ["patient_id"])
    op.create_table(
        "access_session",
        sa.Column("session_hash", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("csrf_hash", sa.String(64), nullable=False),
        sa.Column("second_factor", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    op.create_index("ix_access_session_account", "access_session", ["account_id"])
    op.create_table(
        "access_login_attempt",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("login_hash", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
    )
    op.create_index("ix_access_login_attempt_source", "access_login_attempt", ["source", "at"])
    op.create_index("ix_access_login_attempt_login", "access_login_attempt", ["login_hash", "at"])
    op.create_table(
        "access_client",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("redirect_uris", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=True),
        sa.Column("jwks", sa.Text, nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "access_auth_code",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("nonce", sa.String(255), nullable=True),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("used", sa.Boolean, nullable=False),
    )
    op.create_table(
        "access_refresh_token",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("family_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_access_refresh_token_client", "access_refresh_token", ["client_id"])
    op.create_index("ix_access_refresh_token_family", "access_refresh_token", ["family_id"])
    op.create_table(
        "access_grant",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("granted_at", sa.String(32), nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    op.create_table(
        "access_revoked_token",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "access_rule",
        sa.Column("rule_id", sa.String(64), primary_key=True),
        sa.Column("actor", sa.String(16), nullable=False),
        sa.Column("profession", sa.String(32), nullable=False),
        sa.Column("res_type", sa.Text(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("relationship", sa.String(24), nullable=False),
        sa.Column("effect", sa.String(8), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
    )
    op.create_table(
        "access_care",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("rpps", sa.String(32), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("medecin_traitant", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_access_care_rpps", "access_care", ["rpps"])
    op.create_table(
        "access_block",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("rpps", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "access_visibility",
        sa.Column("res_type", sa.String(64), primary_key=True),
        sa.Column("res_id", sa.String(64), primary_key=True),
        sa.Column("flag", sa.String(40), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_access_visibility_patient", "access_visibility", ["patient_id"])
    op.create_table(
        "access_preference",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("emergency_opposition", sa.Boolean, nullable=False),
        sa.Column("research_optout", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "access_break_glass",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("rpps", sa.String(32), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("granted_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_access_break_glass_lookup", "access_break_glass", ["rpps", "patient_id"])
    op.create_table(
        "access_alert",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("acknowledged", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("access_alert")
    op.drop_table("access_break_glass")
    op.drop_table("access_preference")
    op.drop_table("access_visibility")
    op.drop_table("access_block")
    op.drop_table("access_care")
    op.drop_table("access_rule")
    op.drop_table("access_revoked_token")
    op.drop_table("access_grant")
    op.drop_table("access_refresh_token")
    op.drop_table("access_auth_code")
    op.drop_table("access_client")
    op.drop_table("access_login_attempt")
    op.drop_table("access_session")
    op.drop_table("access_account")

"""The audit domain's wiring: the append-only log and its checkpointer."""

from __future__ import annotations

from sqlalchemy import Engine

from carnet.audit.service import AuditService
from carnet.crypto.service import CryptoService
from carnet.settings import Settings


def build(settings: Settings, engine: Engine, crypto: CryptoService) -> AuditService:
    """The audit log, its checkpoints signed with the crypto domain's audit key."""
    return AuditService(
        engine,
        crypto.audit_signer(),
        checkpoint_events=settings.audit_checkpoint_events,
        checkpoint_seconds=settings.audit_checkpoint_seconds,
    )

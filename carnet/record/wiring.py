"""The record domain's wiring: personal spaces, representatives and the outbox."""

from __future__ import annotations

from sqlalchemy import Engine

from carnet.crypto.service import CryptoService
from carnet.fhir.service import FhirService
from carnet.record.representatives import Representatives
from carnet.record.service import CloseHook, RecordService
from carnet.settings import Settings


def build(
    settings: Settings,
    engine: Engine,
    fhir: FhirService,
    crypto: CryptoService,
    *,
    on_close: CloseHook | None = None,
) -> RecordService:
    """The personal-space service with the objection window and retention of the settings; the
    record tables' own reads run on ``engine``, resources only through FHIR sessions;
    ``on_close`` runs in each closure's transaction (the apps' access ends there)."""
    return RecordService(
        fhir,
        crypto.blind,
        Representatives(fhir, engine),
        engine=engine,
        objection_window_days=settings.objection_window_days,
        retention_years=settings.record_retention_years,
        on_close=on_close,
    )

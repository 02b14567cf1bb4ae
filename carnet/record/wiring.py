"""The record domain's wiring: personal spaces, representatives and the outbox."""

from __future__ import annotations

from carnet.crypto.service import CryptoService
from carnet.fhir.service import FhirService
from carnet.record.representatives import Representatives
from carnet.record.service import RecordService
from carnet.settings import Settings


def build(settings: Settings, fhir: FhirService, crypto: CryptoService) -> RecordService:
    """The personal-space service with the objection window and retention of the settings."""
    return RecordService(
        fhir,
        crypto.blind,
        Representatives(fhir),
        objection_window_days=settings.objection_window_days,
        retention_years=settings.record_retention_years,
    )

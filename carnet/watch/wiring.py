"""Builds the watch's service from the application's parts (it keeps no state of its own: a
page or a command builds it when it needs it)."""

from __future__ import annotations

from sqlalchemy import Engine

from carnet.audit.service import AuditService
from carnet.crypto.blind_index import BlindIndexer
from carnet.fhir.service import FhirService
from carnet.settings import Settings
from carnet.watch.explain import EvidenceReader
from carnet.watch.service import WatchService


def build(
    settings: Settings, engine: Engine, fhir: FhirService, audit: AuditService, blind: BlindIndexer
) -> WatchService:
    reader = EvidenceReader(engine, fhir, blind, settings.fhir_base_url)
    return WatchService(
        engine,
        audit,
        reader,
        per_1000=settings.watch_alert_budget,
        history_days=settings.watch_history_days,
        min_score=settings.watch_min_score,
    )

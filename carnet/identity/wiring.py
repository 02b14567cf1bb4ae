"""The identity domain's wiring: the service, and its checks and hooks on every FHIR write
registered here, in one place, before anything else uses the FHIR service."""

from __future__ import annotations

from sqlalchemy import Engine

from carnet.crypto.service import CryptoService
from carnet.fhir.service import FhirService
from carnet.identity.ins_anywhere import refuse_broken_ins
from carnet.identity.register_store import open_register
from carnet.identity.service import IdentityService
from carnet.settings import Settings


def build(
    settings: Settings, engine: Engine, fhir: FhirService, crypto: CryptoService
) -> IdentityService:
    """Identity matching with the reference register; registers its FHIR write hooks. The
    identity tables (index, vigilance, register, model) are read and written on ``engine`` in
    transactions of their own; resources only through the FHIR service's sessions."""
    identity = IdentityService(
        fhir,
        crypto.data_keys,
        crypto.blind,
        engine=engine,
        link_threshold=settings.identity_link_threshold,
        review_threshold=settings.identity_review_threshold,
        register=open_register(engine, crypto.data_keys, crypto.blind),
    )
    fhir.patient_hooks.append(identity.on_patient_write)
    fhir.body_checks.append(refuse_broken_ins)  # a broken INS anywhere in a body: 422
    fhir.deposit_hooks.append(
        identity.deposits.on_create
    )  # documents naming their patient by identity
    return identity

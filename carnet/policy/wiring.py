"""The policy domain's wiring: the policy decision point (before the FHIR service, whose access
hook asks it), the access hook itself, then the services built on the FHIR service: the patient's
controls (masks, blocks, care relationships, preferences), emergency access and the operator's
alerts, and the research opt-out's history. Who is calling is wired by authn/wiring.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from carnet.audit.service import AuditService
from carnet.fhir.service import FhirService
from carnet.fhir.wiring import FhirStore
from carnet.policy.break_glass import EmergencyAccess
from carnet.policy.controls import ControlsService
from carnet.policy.enforce import PolicyAccess
from carnet.policy.granular import granular_ids_for
from carnet.policy.research_optout import ResearchOptOut
from carnet.policy.rules import seed_rules
from carnet.policy.service import PolicyDecisionPoint
from carnet.settings import Settings


def build_decision_point(
    engine: Engine,
    store: FhirStore,
    *,
    represented: Callable[[Connection, str], Sequence[str]],
    record_open: Callable[[Connection, str], bool],
    migrate: bool = True,
) -> PolicyDecisionPoint:
    """The decision point, complete: who represents whom and whether a record takes writes come
    from the record domain; the default rules are seeded when the database was just migrated."""
    if migrate:
        with engine.begin() as conn:
            seed_rules(conn)
    return PolicyDecisionPoint(
        represented=represented,
        record_open=record_open,
        granular_ids=granular_ids_for(store.compiler, store.definitions),
    )


def access_hook(audit: AuditService, pdp: PolicyDecisionPoint) -> PolicyAccess:
    """What the FHIR service asks before each interaction (the decision, then the audit)."""
    return PolicyAccess(audit, pdp)


@dataclass(frozen=True)
class PolicyServices:
    controls: ControlsService
    emergency: EmergencyAccess
    research_optout: ResearchOptOut


def build(
    settings: Settings,
    engine: Engine,
    audit: AuditService,
    fhir: FhirService,
    pdp: PolicyDecisionPoint,
) -> PolicyServices:
    """The patient's and the professionals' controls over the decision point's inputs."""
    return PolicyServices(
        controls=ControlsService(engine, fhir, audit, pdp),
        emergency=EmergencyAccess(engine, fhir, audit, minutes=settings.break_glass_minutes),
        research_optout=ResearchOptOut(engine),
    )

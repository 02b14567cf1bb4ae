"""The patient's side of the extraction log: the research projects whose released extracts
included the caller (issue 15), with the project's title, organisation, purpose and the date.

Read for the caller's own patient id only (never a parameter, so no one asks about another
person), audited in that patient's slice of the log. It gives the researcher nothing: no
pseudonym, no row, nothing about other people.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from carnet.audit.events import Touched, build_event
from carnet.audit.service import AuditService, actor_of
from carnet.caller import Kind, RequestContext
from carnet.hub.models import hub_permit
from carnet.hub.omop.models import hub_extraction, hub_extraction_person

ACTION = "research-uses"


class UsesRefusedError(PermissionError):
    """The caller is not a person with a record (only they see which projects used it)."""


@dataclass(frozen=True)
class ProjectUse:
    project_id: str
    title: str | None  # None when the permit is not in the hub's register (a local extraction)
    organisation: str | None
    purpose: str | None
    extracted_at: str  # the extraction's stamp (UTC)


def projects_that_included_me(
    engine: Engine, audit: AuditService, ctx: RequestContext
) -> list[ProjectUse]:
    """The caller's own released inclusions, oldest first; audited, allowed or refused."""
    principal = ctx.principal
    patient_id = principal.patient_id
    if principal.kind is not Kind.PERSON or patient_id is None:
        audit.append([build_event(actor_of(ctx), ACTION, "Patient", 403, [])])
        raise UsesRefusedError("only a person sees the projects that used their record")
    e, p, permit = hub_extraction.c, hub_extraction_person.c, hub_permit.c
    query = (
        select(e.project_id, e.created_at, permit.title, permit.organisation, permit.purpose)
        .join(hub_extraction_person, p.extraction_id == e.id)
        .outerjoin(hub_permit, permit.permit_id == e.permit_id)
        .where(p.patient_id == patient_id, e.released == 1)
        .order_by(e.created_at)
    )
    with engine.connect() as conn:
        uses = [
            ProjectUse(r.project_id, r.title, r.organisation, r.purpose, r.created_at)
            for r in conn.execute(query)
        ]
    touched = [Touched("Patient", patient_id, None, patient_id)]
    audit.append([build_event(actor_of(ctx), ACTION, "Patient", 200, touched)])
    return uses

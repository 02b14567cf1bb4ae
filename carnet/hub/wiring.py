"""The hub domain's wiring: roles, permits and their extracts, the workspace, release requests and
the catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from carnet.audit.service import AuditService
from carnet.hub.catalogue.service import CatalogueService
from carnet.hub.extracts import PermitExtracts
from carnet.hub.permits import PermitService
from carnet.hub.releases import ReleaseService
from carnet.hub.roles import Roles
from carnet.hub.workspace import WorkspaceService
from carnet.settings import Settings


@dataclass(frozen=True)
class HubServices:
    """The research hub's services (the extraction engine is carnet/hub/omop's)."""

    roles: Roles
    permits: PermitService
    extracts: PermitExtracts
    workspace: WorkspaceService
    releases: ReleaseService
    extracts_dir: Path  # one folder per project under it
    catalogue: CatalogueService


def build(settings: Settings, engine: Engine, audit: AuditService) -> HubServices:
    """The hub's services over the shared database and audit log."""
    roles = Roles(engine)
    permits = PermitService(engine, audit, roles)
    extracts = PermitExtracts(permits)
    workspace = WorkspaceService(permits, extracts, audit)
    hub_dir = settings.data_dir / "hub"
    releases = ReleaseService(engine, audit, permits, extracts, workspace, outputs_dir=hub_dir)
    catalogue = CatalogueService(settings.public_base_url, hub_dir / "catalogue")
    return HubServices(roles, permits, extracts, workspace, releases, hub_dir, catalogue)

"""`carnet backup drill`: a restored snapshot proves itself.

Restored into scratch space, a snapshot must hold the same resources (a digest over every stored
body equals the one taken with the snapshot, and every body decrypts, but for crypto-shredded
patients), an audit log that verifies and whose checkpoint the live log extends (a consistency
proof), and no readable key for any patient crypto-shredded in the live store since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from carnet.audit import merkle
from carnet.audit.service import AuditService
from carnet.audit.verify import verify
from carnet.crypto.backup_keys import destroyed_owners, owners_with_keys
from carnet.fhir.integrity import readable_current_bodies, resources_digest
from carnet.fhir.repository import Repository


@dataclass(frozen=True)
class DrillReport:
    snapshot_id: str
    versions: int
    readable: int
    same_resources: bool
    audit_events: int
    audit_verified: bool
    consistent_with_live: bool
    shredded: int
    shredded_readable: int

    @property
    def ok(self) -> bool:
        return (
            self.same_resources
            and self.audit_verified
            and self.consistent_with_live
            and self.shredded_readable == 0
        )


@dataclass(frozen=True)
class Store:
    """One side of the drill: a store's engine, repository and audit log."""

    engine: Engine
    repository: Repository
    audit: AuditService


def drill(manifest: dict[str, Any], restored: Store, live: Store) -> DrillReport:
    """Check a restored snapshot against its manifest and the live store."""
    versions, digest = resources_digest(restored.repository, restored.engine)
    readable = readable_current_bodies(restored.repository)
    report = verify(restored.audit)
    consistent = _extends(manifest, restored.audit, live.audit)
    with live.engine.connect() as conn:
        shredded = destroyed_owners(conn)
    with restored.engine.connect() as conn:
        still_readable = owners_with_keys(conn, shredded)
    return DrillReport(
        snapshot_id=str(manifest["id"]),
        versions=versions,
        readable=readable,
        same_resources=(versions, digest)
        == (manifest["resources"]["versions"], manifest["resources"]["digest"]),
        audit_events=report.events,
        audit_verified=report.ok,
        consistent_with_live=consistent,
        shredded=len(shredded),
        shredded_readable=len(still_readable),
    )


def _extends(manifest: dict[str, Any], restored: AuditService, live: AuditService) -> bool:
    """The restored log's checkpoint is the snapshot's, and the live log extends it."""
    mine = restored.latest()
    taken = manifest.get("checkpoint")
    if mine is None or taken is None:
        return mine is None and taken is None
    if (mine.size, mine.root.hex()) != (taken["size"], taken["root"]):
        return False
    theirs = live.latest()
    if theirs is None or theirs.size < mine.size:
        return False
    proof = live.consistency_proof(mine.size, theirs.size)
    return merkle.verify_consistency(mine.size, theirs.size, mine.root, theirs.root, proof)

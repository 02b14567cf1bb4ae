"""A permit's extracts: the hub's ``PermitExtracts`` service, over ``PermitService``.

What an active permit lets leave the record store (the ``ExtractionSpec`` built from its
application's variables, dates and k threshold), the extraction run for it (the operator's command,
the extractor given: carnet/hub/omop), and the record of every extract in ``hub_permit_extract``
(its path, output hash, engine, row counts and whether its risk report blocks release), of which the
workspace and release requests read the newest. Every extraction is one event in the audit log.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import insert, select

from carnet.caller import RequestContext
from carnet.db.engine import writing
from carnet.hub.models import hub_permit_extract
from carnet.hub.omop.spec import Engine as ExtractionEngine
from carnet.hub.omop.spec import ExtractionResult, ExtractionSpec
from carnet.hub.permits import ACTIVE, Permit, PermitService

# none named: the extraction takes all of its own (year of birth, sex, département, rare codes)
DEFAULT_QUASI_IDENTIFIERS: tuple[str, ...] = ()


class PermitExtracts:
    """The extraction of ``permits``' active permits and the record of their extracts."""

    def __init__(self, permits: PermitService) -> None:
        self.permits = permits

    @staticmethod
    def _spec(permit: Permit, output_dir: Path, engine: ExtractionEngine) -> ExtractionSpec:
        """What an active permit lets leave the record store (carnet/hub/omop/spec.py); its
        state is checked, and a refusal audited, by ``extract``."""
        variables = permit.application.variables
        return ExtractionSpec(
            project_id=permit.project_id,
            permit_id=permit.permit_id,
            tables=frozenset(variables),
            columns={t: frozenset(cols) for t, cols in variables.items() if cols},
            dates=permit.application.dates,  # type: ignore[arg-type]
            k_threshold=permit.application.k_threshold,
            quasi_identifiers=DEFAULT_QUASI_IDENTIFIERS,
            engine=engine,
            output_dir=output_dir / permit.project_id,
        )

    def extract(
        self,
        ctx: RequestContext,
        permit_id: str,
        extractor: Callable[[ExtractionSpec], ExtractionResult],
        output_dir: Path,
        engine: ExtractionEngine = "duckdb",
    ) -> ExtractionResult:
        """Run the extraction of an active permit (the operator's command) and record it."""
        # an unknown permit is a refused step too: 404, audited (aimed_at)
        permit = self.permits.aimed_at(ctx, "permit-extract", permit_id)
        if permit.state != ACTIVE:
            raise self.permits.refuse(
                ctx, "permit-extract", permit_id, 409, f"the permit is {permit.state}"
            )
        result = extractor(self._spec(permit, output_dir, engine))
        self.record_extraction(ctx, permit_id, result, engine)
        return result

    def record_extraction(
        self, ctx: RequestContext, permit_id: str, result: ExtractionResult, engine: str
    ) -> None:
        """Keep an extract's record (audited as ``permit-extract``)."""
        with writing(self.permits.engine) as conn:
            conn.execute(
                insert(hub_permit_extract).values(
                    extraction_id=str(uuid.uuid4()),
                    permit_id=permit_id,
                    extract_path=str(result.extract_path),
                    output_hash=result.output_hash,
                    engine=engine,
                    row_counts=json.dumps(dict(result.row_counts)),
                    release_blocked=int(result.risk_report.release_blocked),
                    extracted_at=self.permits.now(),
                )
            )
            self.permits.audit_in(conn, ctx, "permit-extract", permit_id)

    def latest_extract(self, permit_id: str) -> tuple[Path, bool] | None:
        """The newest extract's path and whether its risk report blocks release."""
        with self.permits.engine.connect() as conn:
            row = conn.execute(
                select(hub_permit_extract.c.extract_path, hub_permit_extract.c.release_blocked)
                .where(hub_permit_extract.c.permit_id == permit_id)
                .order_by(hub_permit_extract.c.extracted_at.desc())
                .limit(1)
            ).first()
        return None if row is None else (Path(row[0]), bool(row[1]))

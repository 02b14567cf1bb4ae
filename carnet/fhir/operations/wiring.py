"""The bulk operations' wiring: $export and $import over one job store and one runner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from carnet.fhir.import_files import ImportLimits
from carnet.fhir.operations.export import ExportService
from carnet.fhir.operations.import_ import ImportService
from carnet.fhir.operations.jobs import JobRunner, JobStore
from carnet.fhir.service import FhirService
from carnet.settings import Settings


@dataclass(frozen=True)
class BulkServices:
    export: ExportService
    import_: ImportService


def build(settings: Settings, engine: Engine, fhir: FhirService) -> BulkServices:
    """Bulk export and import, sharing the job table and the background runner."""
    jobs = JobStore(engine)
    runner = JobRunner(jobs)
    return BulkServices(
        export=ExportService(
            fhir,
            jobs,
            runner,
            settings.export_dir,
            timedelta(hours=settings.export_retention_hours),
        ),
        import_=ImportService(
            fhir, jobs, runner, settings.import_dir, ImportLimits.from_settings(settings)
        ),
    )

"""The catalogue's figures read from the record store itself, not from an OMOP file.

The whole store is read once through the policy path, as the system caller ``hub-catalogue``
(read-only system scopes, every batch checked and recorded in the audit log, so each patient's
access history shows it), and staged by the extraction's own staging step: the same mapping to
OMOP CDM 5.4, the same exclusion of the people who had opted out of research at that instant.
Only aggregates leave this module (``DatasetStatistics``: rounded counts, ranges, shares): the
staged rows carry a throwaway numbering of people instead of any project's pseudonym, exact
dates, and are deleted when the figures are computed.
"""

from __future__ import annotations

import re
import shutil
import uuid
from datetime import date

import duckdb

from carnet.caller import Kind, Principal, RequestContext
from carnet.db.instants import utc_now
from carnet.hub.catalogue.statistics import DatasetStatistics, dataset_statistics
from carnet.hub.omop.mapping import SOURCE_TYPES
from carnet.hub.omop.optout import research_opted_out
from carnet.hub.omop.service import READ_BATCH, ExtractionServices, collector_paused
from carnet.hub.omop.staging import QI_TABLE, Stager
from carnet.hub.omop.vocabulary import Vocabulary
from carnet.private_files import private_dir

CATALOGUE_CALLER = "hub-catalogue"
_URI = re.compile(r"^(https?://|urn:)[^\s<>\"{}|\\^`]+$")  # a coding system the graph can name


def catalogue_context(ctx: RequestContext) -> RequestContext:
    """The system caller the catalogue reads as: read-only system scopes, named in the audit
    log and in each patient's access history as the catalogue's count."""
    principal = Principal(
        Kind.BACKEND, CATALOGUE_CALLER, client_id="carnet-hub", scopes=frozenset({"system/*.rs"})
    )
    return RequestContext(principal, CATALOGUE_CALLER, ctx.source, "research")


class _Numbering:
    """People numbered in the order met: a stand-in for a pseudonym that never leaves here."""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def person_id(self, patient_id: str) -> int:
        return self._numbers.setdefault(patient_id, len(self._numbers) + 1)

    def shift_days(self, patient_id: str) -> int:
        return 0


def store_statistics(
    services: ExtractionServices,
    ctx: RequestContext,
    today: date,
    *,
    vocabulary: Vocabulary | None = None,
) -> DatasetStatistics:
    """The catalogue's figures (rounded counts of records and individuals, age range, coding
    systems met, temporal coverage, quality per table) of what the store holds for research."""
    at = utc_now()  # the opt-outs are honoured as they stood when the count started
    stager = Stager(
        _Numbering(),
        vocabulary or Vocabulary(),
        "exact",
        lambda ids: research_opted_out(services, ids, at),
    )
    folder = private_dir(services.settings.data_dir / "hub" / "staging" / str(uuid.uuid4()))
    try:
        with collector_paused():
            with services.fhir.session(catalogue_context(ctx), "export", None, None) as session:
                for batch in session.current_batches(
                    "export", SOURCE_TYPES, batch=READ_BATCH, inflate=False
                ):
                    stager.add(batch)
            staged = stager.finish(folder)
        with duckdb.connect() as con:
            for name, path in staged.files.items():
                if name != QI_TABLE:
                    source = str(path).replace("'", "''")
                    con.execute(f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{source}')")
            systems = tuple(s for s in staged.coding_systems if _URI.match(s))
            return dataset_statistics(con, today, coding_systems=systems)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

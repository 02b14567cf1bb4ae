"""The whole-index work of the master patient index, composed into ``IdentityService`` as ``batch``.

Where the service decides one incoming identity at a time, this runs over every identity the index
holds: loading identities known to be distinct without matching them (an existing MPI, a register),
training the Fellegi-Sunter model on the index itself (EM, :mod:`carnet.identity.training`) and the
batch dedupe that lists suspected duplicate pairs of the whole index, on DuckDB or Spark
(:mod:`carnet.identity.engines`). It reads and writes the identity tables only through the
service's storage (``new_rows``, ``load``) and decrypts traits in memory, never to disk or logs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from carnet.db.engine import reading, writing
from carnet.identity.blocking import blocking_keys
from carnet.identity.decisions import IdentityInput
from carnet.identity.engines import open_engine
from carnet.identity.models import identity, identity_block
from carnet.identity.training import DedupePair, TrainingReport, dedupe, train
from carnet.identity.vigilance import dismissed_pairs

if TYPE_CHECKING:
    from carnet.identity.service import IdentityService

log = logging.getLogger("carnet.identity")


class IndexBatch:
    """Bulk loading, training and dedupe over the whole index of ``index``."""

    def __init__(self, index: IdentityService) -> None:
        self.index = index

    def add_many(self, inputs: Iterable[IdentityInput], *, batch: int = 2000) -> list[str]:
        """Load identities known to be distinct without matching (an existing MPI, a register).

        One transaction per ``batch`` identities, rows inserted with executemany.
        """
        ids: list[str] = []
        pending = list(inputs)
        for start in range(0, len(pending), batch):
            with writing(self.index.engine) as conn:
                rows: list[dict[str, Any]] = []
                blocks: list[dict[str, str]] = []
                for inp in pending[start : start + batch]:
                    row, keys = self.index.new_rows(conn, inp, "active", inp.patient_id)
                    ids.append(row["id"])
                    rows.append(row)
                    blocks.extend(keys)
                conn.execute(insert(identity), rows)
                if blocks:
                    conn.execute(insert(identity_block), blocks)
        return ids

    def identities(self) -> list[tuple[str, dict[str, Any]]]:
        """Every non-merged identity's id and decrypted record (training and batch dedupe)."""
        with reading(self.index.engine) as conn:
            rows = conn.execute(select(identity).where(identity.c.state != "merged")).all()
            return [(s.id, s.record) for s in self.index.load(conn, list(rows))]

    def train(
        self, *, random_pairs: int = 200_000, engine: str = "duckdb", spark_master: str = "local[2]"
    ) -> TrainingReport:
        """Estimate m, u and the prior from the index itself and use them from now on."""
        records = dict(self.identities())
        with open_engine(engine, spark_master=spark_master) as batch:
            report = train(
                self.index.model, records, blocking_keys, random_pairs=random_pairs, engine=batch
            )
        self.index.save_model(report.model, report.blocked_pairs)
        log.info(
            "identity model trained on %d identities, %d blocked pairs",
            report.records,
            report.blocked_pairs,
        )
        return report

    def dedupe(self, *, engine: str = "duckdb", spark_master: str = "local[2]") -> list[DedupePair]:
        """Suspected duplicate pairs of the whole index, best first, on DuckDB or Spark."""
        records = dict(self.identities())
        with reading(self.index.engine) as conn:
            distinct = dismissed_pairs(conn)
        with open_engine(engine, spark_master=spark_master) as batch:
            return dedupe(
                self.index.model,
                records,
                blocking_keys,
                self.index.link_threshold,
                self.index.review_threshold,
                engine=batch,
                distinct=distinct,
                successor=self.index.successor(),
            )

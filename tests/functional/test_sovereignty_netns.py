"""With no network but loopback, the server serves a short journey and opens no other connection:
nothing in Carnet's default configuration reaches outside the machine (docs/operations.md,
Sovereignty)."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _unshare() -> list[str]:
    """The command entering a new network namespace (as root, or as a mapped user), or a skip with
    the kernel's reason when namespaces are refused here."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare or ip (util-linux, iproute2) is not installed")
    command = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
    probe = subprocess.run([*command, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"the kernel refuses network namespaces here: {probe.stderr.strip()[:200]}")
    return command


def _is_local(address: str) -> bool:
    host = ipaddress.ip_address(address.rpartition(":")[0])
    if isinstance(host, ipaddress.IPv6Address) and host.ipv4_mapped is not None:
        host = host.ipv4_mapped
    return host.is_loopback or host.is_unspecified  # unspecified: listening, not connected


@pytest.mark.slow  # a real `carnet serve`, an argon2 sign-in and a namespace: about 15 s
def test_the_server_and_a_journey_need_no_network_but_loopback(tmp_path: Path) -> None:
    # Everything routed to loopback: an attempt to reach outside waits there as a socket the
    # journey's watch sees (without a route it would fail at once and leave nothing to see).
    script = "ip link set lo up && ip route add default dev lo && "
    script += f'exec {sys.executable} -m tests.support.netns_journey "$0"'
    done = subprocess.run(
        [*_unshare(), "sh", "-c", script, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("CARNET_")},
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["interfaces"] == ["lo"]  # the namespace has no way out
    assert result["outbound_attempt_seen"]  # and the watch would have seen a try
    assert result["signin"] == [200, 200, 200], result["output"]  # password, TOTP, /auth/me
    assert result["fhir"] == [201, 200], result["output"]  # write, then read back
    seen = [tuple(s) for s in result["sockets"]]
    assert any(table.startswith("tcp") for table, _, _ in seen)  # the watch saw the server
    outside = [s for s in seen if not (_is_local(s[1]) and _is_local(s[2]))]
    assert outside == []
    assert "Traceback" not in result["output"]

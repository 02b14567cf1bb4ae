"""One-time activation codes: delivered through the outbox then erased from it, stored as a
digest, usable once, until they expire; a new code voids the previous one."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, select

from carnet.app import Services
from carnet.record.activation import ACTIVATION, CODE_DAYS, ActivationCodes, Redeemed
from carnet.record.models import record_activation, record_notification
from carnet.record.notifications import ACTIVATION_CODE, FileChannel
from tests.spec.helpers import patient
from tests.support.caller import AS_LOCAL_OPERATOR

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _patient(services: Services) -> str:
    return services.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id


def test_an_activation_code_reaches_the_outbox_and_is_erased_once_delivered(
    sqlite_services: Services, tmp_path: Path
) -> None:
    services = sqlite_services
    pid = _patient(services)
    code = services.record.activation.issue(pid, ctx=AS_LOCAL_OPERATOR, now=NOW)
    (queued,) = [n for n in services.record.pending_notifications() if n.kind == ACTIVATION_CODE]
    assert queued.secret == code and queued.patient_id == pid
    with services.engine.connect() as conn:
        stored = [r.code_hash for r in conn.execute(select(record_activation))]
    assert code not in stored and code.replace("-", "") not in stored  # a digest only
    services.record.deliver(FileChannel(tmp_path / "out.ndjson"), ctx=AS_LOCAL_OPERATOR, now=NOW)
    assert code in (tmp_path / "out.ndjson").read_text()
    with services.engine.connect() as conn:
        secrets = [r.secret for r in conn.execute(select(record_notification))]
    assert code not in secrets


def test_an_activation_code_is_used_once_and_expires(sqlite_services: Services) -> None:
    codes = sqlite_services.record.activation
    pid = _patient(sqlite_services)
    code = codes.issue(pid, ctx=AS_LOCAL_OPERATOR, now=NOW)
    later = NOW + timedelta(days=CODE_DAYS + 1)
    assert codes.check(code, ACTIVATION, now=NOW) is not None
    assert codes.check(code.lower().replace("-", " "), ACTIVATION, now=NOW) is not None
    assert codes.check(code, ACTIVATION, now=later) is None
    assert codes.check(code, "password-reset", now=NOW) is None

    def whose(_conn: Connection, redeemed: Redeemed) -> str:
        return redeemed.patient_id

    assert codes.spend(code, ACTIVATION, whose, now=NOW) == pid
    assert codes.spend(code, ACTIVATION, whose, now=NOW) is None
    assert codes.check(code, ACTIVATION, now=NOW) is None


def test_a_new_activation_code_voids_the_previous_one(sqlite_services: Services) -> None:
    codes = sqlite_services.record.activation
    pid = _patient(sqlite_services)
    first = codes.issue(pid, ctx=AS_LOCAL_OPERATOR, now=NOW)
    second = codes.issue(pid, ctx=AS_LOCAL_OPERATOR, now=NOW)
    assert codes.check(first, ACTIVATION, now=NOW) is None
    redeemed = codes.check(second, ACTIVATION, now=NOW)
    assert redeemed is not None and redeemed.patient_id == pid


def _spend_at(start: threading.Barrier, codes: ActivationCodes, code: str, won: list[str]) -> None:
    start.wait()
    granted = codes.spend(code, ACTIVATION, lambda conn, redeemed: redeemed.patient_id, now=NOW)
    if granted is not None:
        won.append(granted)


@pytest.mark.both_backends
def test_an_activation_code_is_spent_once_even_by_two_spends_at_once(services: Services) -> None:
    """What a code grants runs in the transaction that claims it (a conditional UPDATE checked by
    its rowcount): of two spends of one code, started together, exactly one is granted; a grant
    that fails rolls the claim back, so the code stays usable."""
    codes = services.record.activation
    pid = _patient(services)
    code = codes.issue(pid, ctx=AS_LOCAL_OPERATOR, now=NOW)

    def failing(conn: Connection, redeemed: Redeemed) -> str:
        raise RuntimeError("the grant failed")

    with pytest.raises(RuntimeError):
        codes.spend(code, ACTIVATION, failing, now=NOW)
    assert codes.check(code, ACTIVATION, now=NOW) is not None  # not spent by a failed grant
    for _ in range(4):
        code = codes.issue(pid, ctx=AS_LOCAL_OPERATOR, now=NOW)
        won: list[str] = []
        start = threading.Barrier(2)
        threads = [
            threading.Thread(target=_spend_at, args=(start, codes, code, won)) for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert won == [pid]
        assert codes.spend(code, ACTIVATION, lambda conn, redeemed: "again", now=NOW) is None

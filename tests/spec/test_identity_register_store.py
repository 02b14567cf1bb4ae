"""The reference identity register in the database (SQLite and PostgreSQL): the INSi answers, the
register every process sees once loaded, and nothing in clear."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from carnet.app import Services, build_services
from carnet.demo.register import demo_register, load_demo_register
from carnet.identity.ins import INS_NIR_OID, Ins, InsStatus, Traits
from carnet.identity.models import identity_register
from carnet.identity.nir import make_nir
from carnet.identity.register import RegisterOutcome, RegisterRecord
from carnet.identity.register_store import DatabaseRegister, open_register
from carnet.identity.service import IdentityConflict, IdentityInput, Outcome
from carnet.settings import Settings
from tests.support.caller import AS_LOCAL_OPERATOR

JEAN = Traits.create("Dupont", ["Jean", "Paul"], "1985-07-14", "M", "75056")
INS = Ins(INS_NIR_OID, make_nir(1, 1985, 7, "75056", 1))


def _register(services: Services) -> DatabaseRegister:
    return DatabaseRegister(services.engine, services.crypto.data_keys, services.crypto.blind)


def test_search_verify_and_nothing_in_clear(services: Services) -> None:
    register = _register(services)
    assert open_register(services.engine, services.crypto.data_keys, services.crypto.blind) is None
    homonym = Ins(INS_NIR_OID, make_nir(1, 1985, 7, "13055", 2))
    assert (
        register.load(
            [RegisterRecord(INS, JEAN), RegisterRecord(homonym, replace(JEAN, birth_place="13055"))]
        )
        == 2
    )
    assert register.load([RegisterRecord(INS, JEAN)]) == 1  # replaced, not doubled
    assert register.count() == 2
    one = register.search(JEAN)
    assert one.outcome is RegisterOutcome.ONE
    assert one.record == RegisterRecord(INS, JEAN)
    assert register.search(replace(JEAN, birth_place=None)).outcome is RegisterOutcome.SEVERAL
    assert register.search(replace(JEAN, given_names=("LUC",))).outcome is RegisterOutcome.NONE
    assert register.verify(INS, JEAN)
    assert not register.verify(INS, replace(JEAN, birth_place="13055"))
    assert not register.verify(Ins(INS_NIR_OID, make_nir(2, 1990, 1, "13055", 3)), JEAN)
    with services.engine.connect() as conn:
        dump = repr([tuple(r) for r in conn.execute(select(identity_register))]).upper()
    for secret in ("DUPONT", "JEAN", "1985-07-14", INS.value):
        assert secret not in dump


def test_demo_register_is_used_by_every_process(services: Services, settings: Settings) -> None:
    assert services.identity.register is None
    assert load_demo_register(services.identity, 3) == 3
    assert services.identity.register is not None
    person = demo_register(3).records()[0]
    # Another process over the same database (the server after `carnet demo`) uses it too.
    other = build_services(settings)
    try:
        mpi = other.identity
        assert isinstance(mpi.register, DatabaseRegister)
        assert mpi.register.count() == 3
        known = mpi.resolve(
            IdentityInput(person.traits, InsStatus.QUAL, person.ins), ctx=AS_LOCAL_OPERATOR
        )
        assert known.outcome is Outcome.NEW
        with pytest.raises(IdentityConflict, match="reference register"):
            mpi.resolve(IdentityInput(JEAN, InsStatus.QUAL, INS), ctx=AS_LOCAL_OPERATOR)  # not demo
        assert mpi.count() == 1
    finally:
        other.close()

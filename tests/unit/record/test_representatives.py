"""The Representatives service on SQLite and PostgreSQL: representations from the register and
declared ones, their terms, and the queries the policy decision point asks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carnet.app import Services
from carnet.fhir.errors import FhirError
from carnet.record.dates import majority
from carnet.record.register import RegisterError, read_register
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.unit.record.helpers import BABY, ODILE, PAUL, TEEN, TODAY, family_csv, write_csv

NOW = datetime.now(UTC)


def _provision(services: Services, path: Path, now: datetime = NOW) -> Any:
    return services.record.provision(
        read_register(path, today=TODAY), now=now, ctx=AS_LOCAL_OPERATOR
    )


def test_newborn_has_the_parent_as_representative_until_18(
    services: Services, tmp_path: Path
) -> None:
    report = _provision(services, family_csv(tmp_path / "register.csv"))
    claire, baby = report.patients[2], report.patients[3]
    adult = majority(BABY.birth)
    assert adult.astimezone().date().year == BABY.birth.year + 18
    assert services.record.representatives.represented_patients(
        claire, now=adult - timedelta(days=1)
    ) == [baby]
    assert services.record.representatives.represented_patients(claire, now=adult) == []
    assert (
        services.record.representatives.representatives_of(baby, now=adult + timedelta(days=1))
        == []
    )
    # A newborn without a parent in the file is refused, with its row.
    with pytest.raises(RegisterError, match="row 2: a newborn needs a parent"):
        read_register(write_csv(tmp_path / "b.csv", [BABY.row()]), today=TODAY)


def test_declared_representatives(services: Services, tmp_path: Path) -> None:
    report = _provision(
        services, write_csv(tmp_path / "r.csv", [TEEN.row(), PAUL.row(), ODILE.row()])
    )
    teen, paul, odile = report.patients[2], report.patients[3], report.patients[4]
    assert (
        services.record.representatives.add(teen, paul, "parent", now=NOW, ctx=AS_LOCAL_OPERATOR)
        is True
    )
    assert (
        services.record.representatives.add(teen, paul, "parent", now=NOW, ctx=AS_LOCAL_OPERATOR)
        is False
    )
    assert services.record.representatives.represented_patients(paul, now=NOW) == [teen]
    assert (
        services.record.representatives.represented_patients(paul, now=majority(TEEN.birth)) == []
    )
    with pytest.raises(FhirError) as info:
        services.record.representatives.add(odile, paul, "parent", now=NOW, ctx=AS_LOCAL_OPERATOR)
    assert info.value.status == 409  # an adult has no parent representative
    ends = NOW + timedelta(days=365)
    assert services.record.representatives.add(
        odile, paul, "curator", until=ends, now=NOW, ctx=AS_LOCAL_OPERATOR
    )
    assert services.record.representatives.representatives_of(
        odile, now=NOW + timedelta(days=364)
    ) == [paul]
    assert services.record.representatives.representatives_of(odile, now=ends) == []
    assert (
        services.record.representatives.end(
            teen, paul, now=NOW + timedelta(seconds=1), ctx=AS_LOCAL_OPERATOR
        )
        == 1
    )
    assert (
        services.record.representatives.representatives_of(teen, now=NOW + timedelta(seconds=2))
        == []
    )
    with pytest.raises(FhirError):
        services.record.representatives.add(teen, teen, "guardian", ctx=AS_LOCAL_OPERATOR)

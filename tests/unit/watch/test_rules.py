"""The rules of known scenarios: each holds on its pattern, outside the professional's unit, and
gives its reason in words."""

from __future__ import annotations

import math
from datetime import date

from carnet.watch.features import FEATURES, Episode
from carnet.watch.rules import matched
from carnet.watch.scorer import Scored, candidates, within_budget

DAY = date(2026, 3, 10)


def _episode(patient: str = "p1", actor: str = "pro-1", **values: float) -> Episode:
    unknown = set(values) - set(FEATURES)
    assert not unknown, unknown
    return Episode(actor, patient, DAY, ("e1",), None, tuple(values.get(n, 0.0) for n in FEATURES))


def _reasons(**values: float) -> list[str]:
    return [r.reason for r in matched(_episode(**values))]


def test_a_relative_outside_the_unit_is_family_and_inside_it_is_not() -> None:
    assert _reasons(same_address=1, same_surname=1, same_street=1)[0] == "family"
    assert "family" not in _reasons(same_address=1, same_surname=1, unit_patient=1)


def test_a_neighbour_is_on_the_street_but_not_at_the_address() -> None:
    assert _reasons(same_street=1) == ["neighbour"]
    assert "neighbour" not in _reasons(same_street=1, same_address=1)


def test_mass_export_and_stolen_credentials() -> None:
    assert "mass-export" in _reasons(exports=math.log1p(40))
    assert "mass-export" not in _reasons(exports=math.log1p(2))
    stolen = {"failed_sign_ins": math.log1p(5), "new_source": 1.0, "off_hours": 1.0}
    assert _reasons(**stolen)[0] == "stolen-credentials"
    assert "stolen-credentials" not in _reasons(**{**stolen, "new_source": 0.0})


def test_an_ordinary_unexplained_access_meets_no_rule() -> None:
    assert _reasons(events=math.log1p(2), unit_patient=1) == []


def test_alerts_group_a_users_day_and_keep_the_daily_budget() -> None:
    scored = [
        Scored(_episode("p1", "pro-1"), 3.0, ("family",)),
        Scored(_episode("p2", "pro-1"), 0.2, ("unusual",)),
        Scored(_episode("p3", "pro-2"), 2.0, ("vip",)),
        Scored(_episode("p4", "pro-3"), 0.5, ("unusual",)),
    ]
    found = candidates(scored)
    assert [(c.actor, c.patients, c.reasons, c.unexplained) for c in found[:2]] == [
        ("pro-1", ["p1"], ["family"], 2),
        ("pro-2", ["p3"], ["vip"], 1),
    ]
    assert [c.actor for c in within_budget(found, 2)] == ["pro-1", "pro-2"]

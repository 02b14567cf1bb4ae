"""Features of access episodes: explanation first, then what makes an unexplained access odd."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from carnet.crypto.blind_index import BlindIndexer, normalise
from carnet.watch.features import (
    FEATURES,
    LOCAL_ZONE,
    Access,
    Evidence,
    Window,
    episodes,
    histories,
    sequential_share,
)
from carnet.watch.scorer import score

DAY = date(2026, 3, 10)
INDEXER = BlindIndexer(b"k" * 32)


def _at(hour: int, day: date = DAY, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL_ZONE)


def _access(
    patient: str,
    hour: int = 10,
    *,
    action: str = "read",
    actor: str = "pro-1",
    day: date = DAY,
    source: str = "10.0.0.1",
    minute: int = 0,
) -> Access:
    return Access(
        f"{patient}-{hour}-{minute}-{day}", _at(hour, day, minute), actor, patient, action, source
    )


def _surname_digest(surname: str) -> str:
    return INDEXER.digest("watch-surname", normalise(surname))


def _one(found: list, patient: str):  # type: ignore[no-untyped-def]
    return next(e for e in found if e.patient_id == patient)


def test_same_surname_is_matched_through_blind_index_digests_never_names() -> None:
    evidence = Evidence(
        surname={
            "actor:pro-1": _surname_digest("Dupont"),
            "patient:p1": _surname_digest("DUPONT"),  # the same name, written otherwise
            "patient:p2": _surname_digest("Durand"),
        }
    )
    found = episodes([_access("p1"), _access("p2")], evidence, {}, {DAY})
    assert _one(found, "p1").value("same_surname") == 1.0
    assert _one(found, "p2").value("same_surname") == 0.0
    held = " ".join(evidence.surname.values()).casefold()
    assert "dupont" not in held and "durand" not in held


def test_an_explained_access_is_not_scored() -> None:
    stay = Window("encounter", _at(0), _at(23))
    evidence = Evidence(care={("pro-1", "p1"): [stay]})
    found = episodes([_access("p1"), _access("p2")], evidence, {}, {DAY})
    assert _one(found, "p1").explanation == "encounter"
    assert _one(found, "p2").explanation is None
    assert [s.episode.patient_id for s in score(found)] == ["p2"]


def test_an_encounter_long_past_explains_nothing() -> None:
    old = Window("encounter", _at(0, DAY - timedelta(days=40)), _at(23, DAY - timedelta(days=38)))
    evidence = Evidence(care={("pro-1", "p1"): [old]})
    assert episodes([_access("p1")], evidence, {}, {DAY})[0].explanation is None


def test_a_deposit_explains_later_access_by_its_author_only() -> None:
    accesses = [
        _access("p1", 9, action="create"),
        _access("p1", 11),
        _access("p1", 11, actor="pro-2"),
    ]
    found = episodes(accesses, Evidence(), {}, {DAY})
    by_actor = {e.actor: e.explanation for e in found}
    assert by_actor == {"pro-1": "deposit", "pro-2": None}


def test_the_medecin_traitant_is_explained_at_any_time() -> None:
    evidence = Evidence(care={("pro-1", "p1"): [Window("medecin-traitant")]})
    assert episodes([_access("p1", 3)], evidence, {}, {DAY})[0].explanation == "medecin-traitant"


def test_flagged_people_and_addresses_are_features() -> None:
    evidence = Evidence(
        address={"actor:pro-1": "a1", "patient:p1": "a1", "patient:p2": "a2"},
        street={"actor:pro-1": "s1", "patient:p1": "s1", "patient:p2": "s1"},
        flags={"p3": frozenset({"vip"}), "p4": frozenset({"staff"})},
    )
    found = episodes([_access(p) for p in ("p1", "p2", "p3", "p4")], evidence, {}, {DAY})
    assert (_one(found, "p1").value("same_address"), _one(found, "p2").value("same_address")) == (
        1,
        0,
    )
    assert _one(found, "p2").value("same_street") == 1.0
    assert _one(found, "p3").value("vip") == 1.0 and _one(found, "p4").value("staff") == 1.0


def test_off_hours_are_judged_against_the_users_own_history() -> None:
    past_days = [DAY - timedelta(days=d) for d in range(1, 8)]
    night_worker = [_access(f"h{d}", 2, actor="night", day=day) for d, day in enumerate(past_days)]
    day_worker = [_access(f"h{d}", 10, actor="day", day=day) for d, day in enumerate(past_days)]
    today = [_access("p1", 2, actor="night"), _access("p1", 2, actor="day")]
    everything = night_worker + day_worker + today
    found = episodes(everything, Evidence(), histories(everything, DAY), {DAY})
    off = {e.actor: e.value("off_hours") for e in found}
    assert off == {"night": 0.0, "day": 1.0}


def test_a_volume_spike_and_a_new_source_are_user_day_features() -> None:
    past_days = [DAY - timedelta(days=d) for d in range(1, 8)]
    past = [_access(f"h{d}", 10, day=day) for d, day in enumerate(past_days)]
    today = [_access(f"p{i}", 10, minute=i, source="203.0.113.9") for i in range(30)]
    everything = past + today
    found = episodes(everything, Evidence(), histories(everything, DAY), {DAY})
    assert found[0].value("volume_ratio") == 15.0  # 30 records against a mean of 1 (+1)
    assert found[0].value("new_source") == 1.0


def test_records_walked_in_id_order_are_sequential_browsing() -> None:
    walked = [f"p{i:03d}" for i in range(20)]
    assert sequential_share(walked) == 1.0
    assert sequential_share(walked[:5]) == 0.0  # too few to say
    shuffled = [
        "p005",
        "p001",
        "p009",
        "p002",
        "p007",
        "p003",
        "p008",
        "p000",
        "p006",
        "p004",
        "p010",
    ]
    assert sequential_share(shuffled) < 0.3


def test_every_feature_has_its_value() -> None:
    found = episodes([_access("p1")], Evidence(), {}, {DAY})
    assert len(found[0].features) == len(FEATURES)

"""How the tests are shared between xdist workers (``make test``: ``--dist loadgroup
--no-loadscope-reorder``).

A unit of work goes to one worker whole. By default a unit is a test file, so its module fixtures
are built once (what ``--dist loadfile`` did). A test can join a named unit instead: every test
asking for the ``spark`` fixture is in the ``spark`` unit, so one worker starts one JVM for all of
them; ``@pytest.mark.xdist_group("name")`` names any other shared unit.

Units are handed out in the order of the collection, which this module sets: the units holding
tests marked ``slow`` first, the heaviest first (slow tests count 30 each, others 1), then the rest
by size. A long unit handed out last would keep one worker busy while the other idles
(xdist's own order, by number of tests, put the four-test crash-safety file last).
"""

from __future__ import annotations

from collections import defaultdict

import pytest

SLOW_WEIGHT = 30  # a slow test costs about as much as thirty ordinary ones
SHARED_FIXTURE_GROUPS = {"spark": "spark"}  # fixture -> the unit of every test that uses it


def _unit(item: pytest.Item) -> str:
    names = [
        str(m.args[0] if m.args else m.kwargs.get("name", "default"))
        for m in item.iter_markers("xdist_group")
    ]
    if names:
        return "_".join(sorted(set(names)))
    fixtures = getattr(item, "fixturenames", ())
    for fixture, group in SHARED_FIXTURE_GROUPS.items():
        if fixture in fixtures:
            return group
    return item.nodeid.split("::")[0]


def schedule_for_workers(items: list[pytest.Item]) -> None:
    """Give every test its unit (an ``xdist_group`` mark) and sort units heaviest first."""
    units: dict[str, list[pytest.Item]] = defaultdict(list)
    for item in items:
        unit = _unit(item)
        if not any(item.iter_markers("xdist_group")):
            item.add_marker(pytest.mark.xdist_group(unit))
        units[unit].append(item)

    def weight(unit: list[pytest.Item]) -> int:
        return sum(SLOW_WEIGHT if item.get_closest_marker("slow") else 1 for item in unit)

    ordered = sorted(units.values(), key=weight, reverse=True)  # stable: ties keep file order
    items[:] = [item for unit in ordered for item in unit]

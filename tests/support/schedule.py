"""The order in which test files are handed to the xdist workers (``make test``: ``--dist loadfile
--no-loadscope-reorder``), and which files go to the same worker.

A file goes to one worker whole, so its module fixtures are built once. Files are handed out in
the order of the collection, which this module sets: the heaviest first (a test marked ``slow``
counts 30, any other 1). xdist's own order (by number of tests) handed the four-test crash-safety
file out last, so one worker ran it alone while the other idled.

Files sharing a costly per-worker resource form one work unit (``SAME_WORKER``): every Spark test
on one worker starts one JVM per run instead of one per worker, and the browser files run back to
back on one Chromium. xdist's ``--dist loadgroup`` would
say that with a marker, but pytest-xdist 3.8 marks a group by rewriting ``item._nodeid``, which
pytest 9.2 no longer reads: the groups are silently ignored. So ``tests/conftest.py`` hands xdist
``GroupedFileScheduling`` instead: ``loadfile`` whose unit is a file or its group.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

SLOW_WEIGHT = 30  # a slow test costs about as much as thirty ordinary ones

# Every file whose tests take the worker's Spark session (the ``spark`` fixture): one JVM per run.
# tests/support/test_schedule.py fails when a file using ``spark`` is missing here.
SAME_WORKER: dict[str, tuple[str, ...]] = {
    "spark": (
        "tests/functional/test_identity_cli.py",
        "tests/spec/test_identity_dismissed.py",
        "tests/unit/hub/test_engines_agree.py",
        "tests/unit/identity/test_spark.py",
    ),
    # Every file whose tests take the worker's Chromium (``browser_fixture``): run back to back,
    # one Chromium and one Playwright driver per run (a relaunch costs ~1.2 CPU-s, paid each time
    # a worker came back to browser tests from others). tests/support/test_schedule.py fails
    # when one is missing.
    "chromium": (
        "tests/functional/web/test_activation_journey.py",
        "tests/functional/web/test_hub_journey_browser.py",
        "tests/functional/web/test_hub_register_browser.py",
        "tests/functional/web/test_patient_controls_journeys.py",
        "tests/functional/web/test_portal_foundation.py",
        "tests/functional/web/test_pro_journey.py",
        "tests/functional/web/test_profile_journey.py",
        "tests/functional/web/test_record_journey.py",
        "tests/functional/web/test_rgaa_manual_review.py",
        "tests/functional/web/test_sign_in_journey.py",
        "tests/functional/web/test_watch_browser.py",
    ),
    # Every file importing ACRO (statsmodels, SciPy, matplotlib: ~2.2 CPU-s to import), so one
    # worker imports it once. tests/support/test_schedule.py fails when one is missing.
    "acro": (
        "tests/functional/web/test_hub_pages.py",
        "tests/unit/hub/test_disclosure_matches_acro.py",
    ),
}
_GROUP_OF = {path: group for group, paths in SAME_WORKER.items() for path in paths}


def work_unit(nodeid: str) -> str:
    """What a worker takes whole: the test's file, or the group that file belongs to."""
    path = nodeid.split("::", 1)[0]
    return _GROUP_OF.get(path, path)


def schedule_for_workers(items: list[pytest.Item]) -> None:
    """Sort the tests unit by unit, the heaviest first (stable: ties keep their order; a unit's
    files stay in collection order, each file's tests together)."""
    units: dict[str, list[pytest.Item]] = defaultdict(list)
    for item in items:
        units[work_unit(item.nodeid)].append(item)

    def weight(tests: list[pytest.Item]) -> int:
        return sum(SLOW_WEIGHT if item.get_closest_marker("slow") else 1 for item in tests)

    ordered = sorted(units.values(), key=weight, reverse=True)
    items[:] = [item for tests in ordered for item in tests]


def grouped_file_scheduling(config: pytest.Config, log: Any) -> Any:
    """xdist's ``loadfile`` scheduler with ``work_unit`` as its unit (imported here only when
    xdist runs)."""
    from xdist.scheduler import LoadFileScheduling

    class GroupedFileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return GroupedFileScheduling(config, log)

"""The order in which test files are handed to the xdist workers (``make test``: ``--dist loadfile
--no-loadscope-reorder``).

A file goes to one worker whole, so its module fixtures are built once. Files are handed out in
the order of the collection, which this module sets: the heaviest first (a test marked ``slow``
counts 30, any other 1). xdist's own order (by number of tests) handed the four-test crash-safety
file out last, so one worker ran it alone while the other idled.

``--dist loadgroup`` (named groups across files, e.g. every Spark test on one worker) would be
better, but pytest-xdist 3.8 marks a group by rewriting ``item._nodeid``, which pytest 9.2 no
longer reads: the groups are silently ignored and each test is scheduled on its own.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

SLOW_WEIGHT = 30  # a slow test costs about as much as thirty ordinary ones


def schedule_for_workers(items: list[pytest.Item]) -> None:
    """Sort the tests file by file, the heaviest files first (stable: ties keep their order)."""
    files: dict[str, list[pytest.Item]] = defaultdict(list)
    for item in items:
        files[item.nodeid.split("::")[0]].append(item)

    def weight(tests: list[pytest.Item]) -> int:
        return sum(SLOW_WEIGHT if item.get_closest_marker("slow") else 1 for item in tests)

    ordered = sorted(files.values(), key=weight, reverse=True)
    items[:] = [item for tests in ordered for item in tests]

"""Two apps made in one process share their routes (built once, carnet/app.py ``shared_routes``)
and nothing of their services: each answers from its own store, checks tokens with its own keys
and audits into its own log, and the second app's requests use the route state the first one
built."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from carnet.app import Services, build_services, create_app
from carnet.dependencies import installed
from tests.conftest import make_settings
from tests.spec.helpers import patient
from tests.support.audit_log import logged_events
from tests.support.auth import bearer
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.migrated_store import SqliteTemplate


@pytest.fixture
def two_services(tmp_path: Path, migrated_sqlite: SqliteTemplate) -> Iterator[list[Services]]:
    """Services over two stores of their own (and two keyrings)."""
    built = []
    for name in ("a", "b"):
        migrated_sqlite.copy_into(tmp_path / name)
        built.append(build_services(make_settings(tmp_path / name), migrate=False))
    yield built
    for services in built:
        services.close()


def _route_state(app: FastAPI) -> dict[tuple[str, str], object]:
    """Each endpoint's dependency tree as ``app`` routes requests to it."""
    return {
        (str(context.path), ",".join(sorted(context.methods or ()))): context.dependant
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    }


def test_two_apps_share_their_routes_and_answer_from_their_own_services(
    two_services: list[Services],
) -> None:
    a, b = two_services
    ids = [s.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id for s in (a, b)]
    app_a, app_b = create_app(a.settings, a), create_app(b.settings, b)
    with (
        TestClient(app_a, base_url="http://127.0.0.1", headers=bearer(a)) as on_a,
        TestClient(app_b, base_url="http://127.0.0.1", headers=bearer(b)) as on_b,
    ):
        # Each app reads its own store: its patient, and not the other's.
        assert [on_a.get(f"/fhir/Patient/{i}").status_code for i in ids] == [200, 404]
        assert [on_b.get(f"/fhir/Patient/{i}").status_code for i in ids] == [404, 200]
        # The guard checks a token with the keys of the app it reached, and audits the refusal
        # into that app's log only.
        before = len(logged_events(a))
        refused = on_b.get(f"/fhir/Patient/{ids[1]}", headers=bearer(a))
        assert refused.status_code == 401, refused.text
        assert len(logged_events(a)) == before
        assert logged_events(b)[-1]["outcome"] == 401

    # The route state both apps used is one: the same endpoints' dependency trees, built once
    # (by whichever request reached each first), not one per app.
    state_a, state_b = _route_state(app_a), _route_state(app_b)
    assert state_a.keys() == state_b.keys()
    assert len(state_a) > 100  # the API's and the portal's endpoints
    assert all(state_a[key] is state_b[key] for key in state_a)
    assert app_a.routes is not app_b.routes  # each app's own mounts and routes list
    assert installed(app_a) is a and installed(app_b) is b


def test_no_test_swaps_a_service_through_an_apps_overrides() -> None:
    """The shared routes do not read an app's overrides (carnet/dependencies.py): a test that
    set one would test nothing. A service is swapped by building the app over other services
    (``dataclasses.replace(services, ...)``)."""
    needle = "dependency_" + "overrides"  # not this file's own mention
    tests = Path(__file__).resolve().parents[1]
    using = sorted(
        str(path.relative_to(tests))
        for path in tests.rglob("*.py")
        if needle in path.read_text(encoding="utf-8")
    )
    assert using == []

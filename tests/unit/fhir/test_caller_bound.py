"""The caller is a required argument of every health-data path: nothing stands in for it."""

from __future__ import annotations

import inspect

import pytest

from carnet.caller import Kind, RequestContext
from carnet.fhir.service import FhirService
from carnet.identity.service import IdentityService
from carnet.record.service import RecordService


def test_request_context_has_no_default_caller() -> None:
    with pytest.raises(TypeError):
        RequestContext()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        RequestContext(actor="someone")  # type: ignore[call-arg]
    # the local operator exists, asked for by name (the CLI)
    local = RequestContext.local_operator()
    assert local.principal.kind is Kind.OPERATOR
    assert "system/*.*" in local.principal.scopes


@pytest.mark.parametrize("service", [FhirService, IdentityService, RecordService])
def test_public_services_require_their_caller(service: type) -> None:
    """No public method of a health-data service takes ``ctx`` with a default."""
    optional = [
        name
        for name, method in inspect.getmembers(service, inspect.isfunction)
        if not name.startswith("_")
        and "ctx" in inspect.signature(method).parameters
        and inspect.signature(method).parameters["ctx"].default is not inspect.Parameter.empty
    ]
    assert optional == []

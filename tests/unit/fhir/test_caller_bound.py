"""The caller is a required argument of every health-data path: nothing stands in for it."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import carnet
from carnet.caller import Kind, RequestContext
from carnet.fhir.operations.export import ExportService
from carnet.fhir.operations.import_ import ImportService
from carnet.fhir.service import FhirService
from carnet.identity.service import IdentityService
from carnet.policy.controls import ControlsService
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


@pytest.mark.parametrize(
    "service",
    [FhirService, IdentityService, RecordService, ExportService, ImportService, ControlsService],
)
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


# What a Unit offers over resource rows: outside the FHIR engine, only a FhirSession calls these.
_UNIT_RESOURCE_METHODS = frozenset(
    {
        "write",
        "current",
        "prefetch_current",
        "version",
        "history",
        "search_ids",
        "count",
        "load",
        "compartment",
        "compartment_keys",
        "destroy_patient_key",
    }
)
_SCANS = "carnet.fhir.store_scan"  # whole-store scans of a unit, for the engine's own use
_ENGINE = Path(carnet.__file__).parent / "fhir"
# The policy's guard: the session hands it its unit to decide (whose item a refusal concerns).
_GUARD = Path(carnet.__file__).parent / "policy" / "enforce.py"


def _bypasses(path: Path) -> list[str]:
    """Calls in ``path`` that reach resource rows or the policy without a session: a Unit's
    resource methods, the engine's old ``interaction`` and its access hook."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == _SCANS:
            found.append(f"{path.name}:{node.lineno}: from {_SCANS} import ...")
        if not isinstance(node, ast.Attribute):
            continue
        owner = ast.unparse(node.value)
        on_unit = owner == "unit" or owner.endswith(".unit")
        if (on_unit and node.attr in _UNIT_RESOURCE_METHODS) or node.attr == "interaction":
            found.append(f"{path.name}:{node.lineno}: {owner}.{node.attr}")
        if node.attr == "access" and ("fhir" in owner or owner == "service"):
            found.append(f"{path.name}:{node.lineno}: {owner}.access")
    return found


def test_every_health_data_path_goes_through_a_caller_bound_session() -> None:
    """No module outside carnet/fhir/ reads or writes resources through a Unit, or asks the
    policy, other than through the FhirSession of its caller: forgetting a check or an audit
    event is then impossible by construction."""
    package = Path(carnet.__file__).parent
    outside = [p for p in package.rglob("*.py") if _ENGINE not in p.parents and p != _GUARD]
    assert len(outside) > 50
    bypasses = [b for p in outside for b in _bypasses(p)]
    assert bypasses == []


def test_the_session_check_sees_a_bypass(tmp_path: Path) -> None:
    """The rule above fails on a module that reads a unit directly (it can fail)."""
    module = tmp_path / "bypass.py"
    module.write_text(
        "def peek(fhir, pid):\n"
        "    with fhir.repo.unit() as unit:\n"
        "        return unit.current('Patient', pid)\n",
        encoding="utf-8",
    )
    assert _bypasses(module) == ["bypass.py:3: unit.current"]
    scan = tmp_path / "scan.py"
    scan.write_text("from carnet.fhir.store_scan import iter_current\n", encoding="utf-8")
    assert _bypasses(scan) == [f"scan.py:1: from {_SCANS} import ..."]


def _repository_reaches(path: Path) -> list[str]:
    """Places in ``path`` that reach the FHIR engine's repository (``fhir.repo``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.name}:{node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "repo"
    ]


def test_identity_and_record_take_no_unit_from_the_fhir_repository() -> None:
    """The identity and record domains read and write their own tables in transactions from
    carnet/db (``reading``/``writing`` on their engine) and resources through sessions: nothing
    there reaches ``fhir.repo``, so the one path for health data is the only way to resources."""
    package = Path(carnet.__file__).parent
    domains = [p for d in ("identity", "record") for p in (package / d).rglob("*.py")]
    assert len(domains) > 10
    assert [r for p in domains for r in _repository_reaches(p)] == []


def test_the_repository_check_sees_a_reach(tmp_path: Path) -> None:
    """The rule above fails on a module that opens a unit on the FHIR repository."""
    module = tmp_path / "reach.py"
    module.write_text(
        "def count(self):\n    with self.fhir.repo.unit(write=False) as unit:\n        return 1\n",
        encoding="utf-8",
    )
    assert _repository_reaches(module) == ["reach.py:2: self.fhir.repo"]

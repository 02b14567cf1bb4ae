"""FHIR errors: each carries the HTTP status and renders as an OperationOutcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from carnet.db.storage_faults import StorageFault


@dataclass(frozen=True)
class Issue:
    code: str  # http://hl7.org/fhir/issue-type
    diagnostics: str
    expression: str = ""
    severity: str = "error"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            out["expression"] = [self.expression]
        return out


@dataclass
class FhirError(Exception):
    """A request that cannot be honoured; ``status`` is the HTTP status to answer with."""

    status: int
    issues: list[Issue] = field(default_factory=list)
    rule: str | None = None  # the policy rule behind a refusal, for the audit log

    @classmethod
    def of(cls, status: int, code: str, diagnostics: str, expression: str = "") -> FhirError:
        return cls(status, [Issue(code, diagnostics, expression)])

    def __str__(self) -> str:
        return "; ".join(i.diagnostics for i in self.issues)

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


def lock_timeout_error() -> FhirError:
    """503: the database lock was not granted in time (another write holds it); retry later."""
    return FhirError.of(503, "transient", "the database is busy with another write; retry")


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def bad_request(diagnostics: str, expression: str = "") -> FhirError:
    return FhirError.of(400, "invalid", diagnostics, expression)


def not_found(diagnostics: str) -> FhirError:
    return FhirError.of(404, "not-found", diagnostics)


def gone(diagnostics: str) -> FhirError:
    return FhirError.of(410, "deleted", diagnostics)


def conflict(diagnostics: str) -> FhirError:
    return FhirError.of(409, "conflict", diagnostics)


def precondition_failed(diagnostics: str) -> FhirError:
    return FhirError.of(412, "conflict", diagnostics)


def unprocessable(issues: list[Issue]) -> FhirError:
    return FhirError(422, issues)


def storage_error(fault: StorageFault) -> FhirError:
    """507 (the store is full) or 503 (it is read-only): nothing of the request was written."""
    status = 507 if fault is StorageFault.FULL else 503
    return FhirError.of(status, "no-store", f"{fault.reason}: nothing was written")

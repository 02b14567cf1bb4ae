"""Audit events as FHIR R4 AuditEvent resources (IHE BALP shapes) and NDJSON export lines.

Each AuditEvent carries the proof extension (``PROOF_URL``): the event's canonical bytes, the
patient slice(s), its leaf index, the tree size and inclusion proof, and the signed checkpoint, all
a client needs to check the event against the log without trusting the server (docs/audit.md).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from carnet.audit.checkpoints import Checkpoint
from carnet.audit.hidden import item_of, whole
from carnet.audit.service import LoggedEvent

PROOF_URL = "urn:carnet:audit-proof"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"

# action -> (DCM event type, restful-interaction subtype, AuditEvent.action, BALP profile)
_ACTIONS: dict[str, tuple[tuple[str, str], str, str, str]] = {
    "create": (("110110", "Patient Record"), "create", "C", "IHE.BasicAudit.PatientCreate"),
    "post": (("110110", "Patient Record"), "create", "C", "IHE.BasicAudit.PatientCreate"),
    "read": (("110110", "Patient Record"), "read", "R", "IHE.BasicAudit.PatientRead"),
    "get": (("110110", "Patient Record"), "read", "R", "IHE.BasicAudit.PatientRead"),
    "vread": (("110110", "Patient Record"), "vread", "R", "IHE.BasicAudit.PatientRead"),
    "update": (("110110", "Patient Record"), "update", "U", "IHE.BasicAudit.PatientUpdate"),
    "put": (("110110", "Patient Record"), "update", "U", "IHE.BasicAudit.PatientUpdate"),
    "delete": (("110110", "Patient Record"), "delete", "D", "IHE.BasicAudit.PatientDelete"),
    "history": (("110112", "Query"), "history-type", "E", "IHE.BasicAudit.PatientQuery"),
    "search": (("110112", "Query"), "search-type", "E", "IHE.BasicAudit.PatientQuery"),
    "transaction": (
        ("110110", "Patient Record"),
        "transaction",
        "E",
        "IHE.BasicAudit.PatientCreate",
    ),
    "export": (("110106", "Export"), "operation", "R", "IHE.BasicAudit.PatientRead"),
}
_PURPOSE = {"care": "TREAT", "emergency": "ETREAT", "research": "HRESCH", "payment": "HPAYMT"}


def outcome_code(status: int) -> str:
    """BALP outcome: 0 success, 4 minor failure (refused, not found), 8 serious (server error)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def audit_event(
    logged: LoggedEvent,
    checkpoint: Checkpoint | None,
    origin: str,
    hidden: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The event as an AuditEvent; items in ``hidden`` (``Type/id``, hidden from the viewer by
    the policy) are left out of its entities, and a slice naming them out of its proof."""
    ev = orjson.loads(logged.body)
    slices = [orjson.loads(s) for s in logged.slices]
    action = str(ev.get("action"))
    (type_code, type_display), subtype, crud, profile = _ACTIONS.get(
        action, (("110110", "Patient Record"), action, "E", "IHE.BasicAudit.PatientRead")
    )
    requestor: dict[str, Any] = {
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": {"identifier": {"value": ev.get("actor")}},
        "requestor": True,
        "network": {"address": ev.get("source"), "type": "2"},
    }
    if ev.get("role"):
        requestor["role"] = [{"text": ev["role"]}]
    if ev.get("client"):
        requestor["altId"] = ev["client"]
    agents = [
        requestor,
        {
            "type": {
                "coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]
            },
            "who": {"display": origin},
            "requestor": False,
        },
    ]
    entities: list[dict[str, Any]] = []
    for s in slices:
        entities.append(
            {
                "what": {"reference": f"Patient/{s['patient']}"},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
        entities.extend(_object(ref) for ref in s["resources"] if item_of(ref) not in hidden)
    entities.extend(_object(ref) for ref in ev.get("resources") or [])
    purpose = str(ev.get("purpose") or "")
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": logged.event_id,
        "meta": {"profile": [BALP + profile]},
        "type": {"system": DCM, "code": type_code, "display": type_display},
        "subtype": [{"system": RESTFUL, "code": subtype}],
        "action": crud,
        "recorded": ev.get("time"),
        "outcome": outcome_code(int(ev.get("outcome") or 0)),
        "outcomeDesc": f"HTTP {ev.get('outcome')}",
        "purposeOfEvent": [
            {"coding": [{"system": ACT_REASON, "code": _PURPOSE[purpose]}]}
            if purpose in _PURPOSE
            else {"text": purpose}
        ],
        "agent": agents,
        "source": {
            "observer": {"display": origin},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "extension": [proof_extension(logged, checkpoint, hidden)],
    }
    if entities:
        resource["entity"] = entities
    return resource


def _object(ref: str) -> dict[str, Any]:
    return {
        "what": {"reference": ref},
        "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
    }


def proof_extension(
    logged: LoggedEvent, checkpoint: Checkpoint | None, hidden: frozenset[str] = frozenset()
) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"url": "event", "valueBase64Binary": b64(logged.body)}]
    parts.extend(
        {"url": "slice", "valueBase64Binary": b64(s)} for s in logged.slices if whole(s, hidden)
    )
    if logged.leaf_index is not None and logged.proof is not None and checkpoint is not None:
        parts.append({"url": "leafIndex", "valueString": str(logged.leaf_index)})
        parts.append({"url": "treeSize", "valueString": str(checkpoint.size)})
        parts.extend({"url": "inclusionProof", "valueBase64Binary": b64(h)} for h in logged.proof)
        parts.append({"url": "checkpoint", "valueString": checkpoint.note})
    return {"url": PROOF_URL, "extension": parts}


def export_header(checkpoint: Checkpoint | None, public_key: bytes, patient_id: str) -> bytes:
    return orjson.dumps(
        {
            "type": "checkpoint",
            "patient": patient_id,
            "publicKey": b64(public_key),
            "note": checkpoint.note if checkpoint else None,
        }
    )


def export_line(logged: LoggedEvent, hidden: frozenset[str] = frozenset()) -> bytes:
    """One event of a patient's export; its slice is withheld (null) when it names an item
    hidden from the viewer."""
    first = logged.slices[0] if logged.slices else None
    return orjson.dumps(
        {
            "type": "event",
            "id": logged.event_id,
            "leafIndex": logged.leaf_index,
            "event": b64(logged.body),
            "slice": b64(first) if first is not None and whole(first, hidden) else None,
            "proof": [b64(h) for h in logged.proof or []],
        }
    )

"""Audit events and their canonical bytes (what a Merkle leaf commits to).

An event is one interaction: who (actor, role, organisation, client app), from where (source
address), what (action, resource type, outcome as the HTTP status), why (purpose) and when (UTC,
microseconds). Ids only: never names, never clinical content.

The per-patient part of an event lives in *slices*: ``{"patient", "resources", "salt"}``, one per
patient whose data the interaction touched. The event body carries only the SHA-256 digests of its
slices (``subjects``), so a patient shown an event that also touched other patients (a search)
learns nothing about them but their number: each slice has a random 128-bit salt.

Canonical form: JSON with sorted keys, no whitespace, UTF-8 (orjson ``OPT_SORT_KEYS``).
The Merkle leaf for the event at index i is ``uint64_be(i) || body``, so an event cannot be moved.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from hashlib import sha256
from typing import Any

import orjson

from carnet.db.ids import time_ordered_id
from carnet.db.instants import stamp

EVENT_VERSION = 1


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def leaf_data(index: int, body: bytes) -> bytes:
    return index.to_bytes(8, "big") + body


@dataclass(frozen=True)
class Touched:
    """One resource an interaction touched: ``Type/id`` with its version and patient compartment."""

    res_type: str
    res_id: str
    version: int | None
    patient_id: str | None

    @property
    def ref(self) -> str:
        base = f"{self.res_type}/{self.res_id}"
        return base if self.version is None else f"{base}/_history/{self.version}"


@dataclass(frozen=True)
class Actor:
    """Who acts, from where, and the policy rule that allowed or denied the interaction."""

    actor: str
    source: str
    purpose: str
    role: str | None = None
    organisation: str | None = None
    client_id: str | None = None
    rule: str | None = None


@dataclass(frozen=True)
class Event:
    event_id: str
    body: bytes
    slices: dict[str, bytes] = field(default_factory=dict)  # patient id -> canonical slice


def slice_digest(slice_bytes: bytes) -> str:
    return sha256(slice_bytes).hexdigest()


def build_event(
    who: Actor,
    action: str,
    res_type: str | None,
    outcome: int,
    touched: Iterable[Touched],
    *,
    moment: datetime | None = None,
) -> Event:
    """The event for one interaction; resources in a patient compartment go to that patient's slice."""
    shared: list[str] = []
    per_patient: dict[str, list[str]] = {}
    for t in touched:
        if t.patient_id:
            per_patient.setdefault(t.patient_id, []).append(t.ref)
        else:
            shared.append(t.ref)
    slices = {
        pid: canonical({"patient": pid, "resources": refs, "salt": secrets.token_hex(16)})
        for pid, refs in per_patient.items()
    }
    event_id = time_ordered_id()
    body = canonical(
        {
            "v": EVENT_VERSION,
            "id": event_id,
            "time": stamp(moment),
            "actor": who.actor,
            "role": who.role,
            "organisation": who.organisation,
            "client": who.client_id,
            "source": who.source,
            "purpose": who.purpose,
            "rule": who.rule,
            "action": action,
            "type": res_type,
            "outcome": outcome,
            "resources": shared,
            "subjects": sorted(slice_digest(s) for s in slices.values()),
        }
    )
    return Event(event_id, body, slices)


def parse(body: bytes) -> dict[str, Any]:
    value = orjson.loads(body)
    if not isinstance(value, dict):
        raise ValueError("an audit event body is a JSON object")
    return value

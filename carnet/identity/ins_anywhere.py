"""A broken INS is refused wherever it comes in a written body, not only in a Patient's own
identifiers: contained resources, the entries of a stored Bundle, any other resource's identifier
(a RelatedPerson), a reference by identifier. One check on the FHIR write path (create and update,
before anything is written): :attr:`FhirService.body_checks`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from carnet.fhir.errors import Issue, unprocessable
from carnet.identity.distinct import Successor, name_two_people
from carnet.identity.ins import INS_SYSTEMS, Ins, InvalidIns, check_ins_identifiers


def _identifier_lists(node: Any, path: str) -> Iterator[tuple[str, list[Any]]]:
    """Every ``identifier`` element under ``node`` (a list, or a Reference's single one), with
    its path; the whole tree is walked (contained resources, Bundle entries, extensions)."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            if key == "identifier":
                if isinstance(value, dict):
                    yield here, [value]
                elif isinstance(value, list):
                    yield here, value
            yield from _identifier_lists(value, here)
    elif isinstance(node, list):
        for position, item in enumerate(node):
            yield from _identifier_lists(item, f"{path}[{position}]")


_INS_SYSTEM_BYTES = tuple(system.encode() for system in INS_SYSTEMS)


def _may_hold_ins(body: dict[str, Any]) -> bool:
    """False when no INS system appears anywhere in ``body``: one pass in C over its JSON,
    so the walk that builds paths runs only for the few bodies that name an INS system."""
    try:
        raw = orjson.dumps(body)
    except orjson.JSONEncodeError:  # not JSON-shaped: let the walk look at it
        return True
    return any(system in raw for system in _INS_SYSTEM_BYTES)


def refuse_broken_ins(res_type: str, body: dict[str, Any]) -> None:
    """Refuse (422) a body holding, anywhere, an identifier with an INS system that breaks the
    NIR/NIA rules; the diagnostics name the place and the rule, never the value."""
    if not _may_hold_ins(body):
        return
    for path, identifiers in _identifier_lists(body, res_type):
        if not any(isinstance(i, dict) and i.get("system") in INS_SYSTEMS for i in identifiers):
            continue
        try:
            check_ins_identifiers({"identifier": identifiers})
        except InvalidIns as exc:
            raise unprocessable([Issue("value", str(exc), path)]) from None


def refuse_ins_of_two_people(inses: list[Ins], successor: Successor, path: str) -> None:
    """Refuse (422) a Patient whose INS identifiers name two people (``path``: where it is), so
    that no identity adopts another person's INS; the diagnostics never quote the numbers."""
    if name_two_people(inses, successor):
        message = (
            "the Patient carries two INS that name two people (only an NIA and the NIR the "
            "reference register says replaced it may go together)"
        )
        raise unprocessable([Issue("business-rule", message, path)])

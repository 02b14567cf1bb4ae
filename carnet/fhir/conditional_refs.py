"""Conditional references: ``"reference": "Patient?identifier=system|value"``.

FHIR R4 (http.html, "Transaction processing"): inside a transaction the server resolves such a
reference by running the search; exactly one match replaces it with ``Type/id``, and no match or
several fail the transaction (HAPI FHIR answers 400 and 412). Anywhere else nothing resolves it:
stored as text, the item would be in no patient's record and in no quarantine, so it is refused
(400) on every create and update (a ``FhirService.body_checks`` entry). A stored Bundle (a
document) keeps its content as sent, as for its ``urn:uuid:`` references.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from carnet.fhir.errors import FhirError, Issue, bad_request

if TYPE_CHECKING:
    from carnet.fhir.session import FhirSession

CONDITIONAL = re.compile(r"[A-Z][A-Za-z]*\?")
"""A resource type followed by search criteria, no id: ``Patient?identifier=...``."""
_IN_JSON = re.compile(rb'"reference":"[A-Z][A-Za-z]*\?')


def conditional_references(res_type: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """(FHIRPath of the ``reference`` element, its value) for each conditional reference of
    ``body``, contained resources included; one pass in C first, so a body without any costs
    no walk."""
    if res_type == "Bundle" or not _IN_JSON.search(orjson.dumps(body)):
        return []
    return list(_walk(body, res_type))


def _walk(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            if key == "reference" and isinstance(value, str) and CONDITIONAL.match(value):
                yield here, value
            else:
                yield from _walk(value, here)
    elif isinstance(node, list):
        for position, item in enumerate(node):
            yield from _walk(item, f"{path}[{position}]")


def refuse_conditional_references(res_type: str, body: dict[str, Any]) -> None:
    """400 for a body written outside a transaction that holds a conditional reference."""
    found = conditional_references(res_type, body)
    if found:
        path = found[0][0]
        raise bad_request(
            f"{path} is a conditional reference (Type?criteria): it is resolved only inside a "
            "transaction Bundle; send the resource in one, or reference Type/id",
            path,
        )


def resolve(session: FhirSession, reference: str, where: str) -> str:
    """``Type/id`` of the one resource the caller may see that ``reference``'s criteria match.

    No match is a 400 (``not-found``: a hidden resource answers alike), several a 412
    (``multiple-matches``); the diagnostics name the place, never the criteria (an INS, a
    name)."""
    res_type, _, query = reference.partition("?")
    if res_type not in session.service.definitions.resource_types:
        raise bad_request(f"the conditional reference at {where} names no known type", where)
    try:
        found = session.conditional_match(res_type, query)
    except FhirError as err:
        if err.status == 412:
            what = f"the conditional reference at {where} matches several {res_type} resources"
            raise FhirError.of(412, "multiple-matches", what, where) from None
        located = [Issue(i.code, i.diagnostics, where) for i in err.issues]
        raise FhirError(err.status, located) from None
    if found is None:
        what = f"the conditional reference at {where} matches no {res_type}"
        raise FhirError.of(400, "not-found", what, where)
    return f"{res_type}/{found.res_id}"

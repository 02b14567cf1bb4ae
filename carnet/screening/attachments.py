"""Screening on the FHIR write path: a body check (:attr:`FhirService.body_checks`) that screens
the content of every attachment of a created or updated resource (Binary, Attachment elements,
contained resources and Bundle entries included) before anything is written or held in identity
quarantine. A refusal is a 422 OperationOutcome naming the place and the screening code; the
session records it in the audit log with the rule ``screening-<code>``. Accepted content is put
back as screened (an image re-encoded without its metadata)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator
from typing import Any

import orjson

from carnet.fhir.errors import FhirError, Issue
from carnet.screening.service import Screener
from carnet.screening.verdict import Refused

# The FHIR issue type for each screening code; anything else is "value".
_ISSUE_TYPES = {
    "too-large": "too-long",
    "too-many-pages": "too-long",
    "unsupported-type": "not-supported",
    "archive": "not-supported",
    "executable": "not-supported",
    "animated-image": "not-supported",
}


def _has_inline_data(body: dict[str, Any]) -> bool:
    """Whether any element of ``body`` may carry inline ``data`` (most bodies do not: one pass
    in C over its JSON; a string ``data`` always serialises as ``"data":"``)."""
    try:
        return b'"data":"' in orjson.dumps(body)
    except orjson.JSONEncodeError:  # not JSON-shaped: let the walk look at it
        return True


def _inline_content(res_type: str, body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (location, node) carrying inline ``data``: a Binary, an Attachment, anywhere."""
    stack: list[tuple[str, Any]] = [(res_type, body)]
    while stack:
        location, node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and "origin" not in node:  # not SampledData
                yield location, node
            stack.extend((f"{location}.{key}", value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((f"{location}[{i}]", item) for i, item in enumerate(node))


def refusal_error(refused: Refused, location: str) -> FhirError:
    """The 422 for a refused file at ``location`` (a FHIR path), with its audit rule."""
    field = "contentType" if refused.code == "type-mismatch" else "data"
    issue = Issue(
        _ISSUE_TYPES.get(refused.code, "value"),
        f"file refused ({refused.code}): {refused.reason}",
        f"{location}.{field}",
    )
    return FhirError(422, [issue], rule=f"screening-{refused.code}")


class AttachmentScreening:
    """The body check over a :class:`Screener`."""

    def __init__(self, screener: Screener) -> None:
        self.screener = screener

    def check(self, res_type: str, body: dict[str, Any]) -> None:
        """Screen each attachment of ``body`` in place; raise a 422 FhirError on the first
        refused (nothing is written: the check runs before the write)."""
        if not _has_inline_data(body):
            return
        for location, node in list(_inline_content(res_type, body)):
            raw = node["data"]
            try:
                data = base64.b64decode("".join(raw.split()), validate=True)
            except (binascii.Error, ValueError):
                raise FhirError(
                    422, [Issue("value", "data is not valid base64", f"{location}.data")]
                ) from None
            declared = node.get("contentType")
            try:
                screened = self.screener.screen(
                    data, declared if isinstance(declared, str) else None
                )
            except Refused as refused:
                raise refusal_error(refused, location) from None
            if screened.data != data:
                node["data"] = base64.b64encode(screened.data).decode("ascii")
                if "size" in node:
                    node["size"] = len(screened.data)
                if "hash" in node:  # Attachment.hash: base64 SHA-1 of the data
                    digest = hashlib.sha1(screened.data, usedforsecurity=False).digest()
                    node["hash"] = base64.b64encode(digest).decode("ascii")

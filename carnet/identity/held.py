"""What a quarantined deposit keeps: the document as it will be attached and who deposited it.

A held document is released later by someone else's action (the Patient written, a merge, a
dismissal); its author is the depositor recorded here, never the caller who released it. Rows
held before the depositor was kept are the bare document: released with no author (care).
"""

from __future__ import annotations

import json
from typing import Any

from carnet.caller import Authorship

_ENVELOPE = "carnet-held"  # marks the wrapped form (a FHIR resource has no such key)


def seal_held(document: dict[str, Any], author: Authorship | None) -> bytes:
    """The clear bytes of a held deposit (encrypted by the caller): document and depositor."""
    depositor = None if author is None else [author.kind, author.author]
    return json.dumps({_ENVELOPE: 1, "resource": document, "author": depositor}).encode()


def open_held(clear: bytes) -> tuple[dict[str, Any], Authorship | None]:
    """The document and depositor of a held deposit's clear bytes (see :func:`seal_held`)."""
    loaded: dict[str, Any] = json.loads(clear)
    if _ENVELOPE not in loaded:
        return loaded, None
    depositor = loaded.get("author")
    author = None if depositor is None else Authorship(str(depositor[0]), str(depositor[1]))
    return dict(loaded["resource"]), author

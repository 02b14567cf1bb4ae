"""What screening answers: the bytes to store (perhaps rewritten), or a refusal with its code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Screened:
    """An accepted file: the bytes to store (an image re-encoded, a DICOM preamble cleared) and
    the content type read from the bytes."""

    data: bytes
    content_type: str


class Refused(Exception):  # noqa: N818 -- a verdict, not a failure of the screener
    """A file that is never stored. ``code`` is stable (audit rule, OperationOutcome,
    documentation); ``reason`` says why in a sentence that names no content."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason

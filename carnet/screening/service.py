"""The screener: one function every deposit and upload goes through before anything is stored.

The type is read from the bytes; a declared type that disagrees is refused. PDFs are parsed and
refused with active content or embedded files; images are re-encoded without metadata; DICOM is
parsed and its preamble cleared; UTF-8 text is accepted as declared (XML without entity
declarations); archives, executables and anything else are refused. The FHIR write path calls it
for every attachment (:mod:`carnet.screening.attachments`); the portal's upload calls
:meth:`Screener.screen` with the uploaded bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from carnet.screening import sniff
from carnet.screening.verdict import Refused, Screened

_XML_DECLARATIONS = (b"<!ENTITY", b"<!DOCTYPE")  # entity expansion and external entities


@dataclass(frozen=True)
class ScreeningLimits:
    max_bytes: int
    max_pdf_pages: int
    max_image_pixels: int


class Screener:
    """Screens one file at a time; holds only its limits, so one instance serves every caller."""

    def __init__(self, limits: ScreeningLimits) -> None:
        self.limits = limits

    def screen(self, data: bytes, declared_type: str | None) -> Screened:
        """The bytes to store and their type, or :class:`Refused` with a code and a reason."""
        if len(data) > self.limits.max_bytes:
            raise Refused(
                "too-large", f"attachment of {len(data)} bytes exceeds {self.limits.max_bytes}"
            )
        detected = sniff.sniff(data)
        if detected is None and not declared_type:
            raise Refused("unsupported-type", "the content is of no type Carnet accepts")
        if declared_type and not sniff.declared_matches(declared_type, detected):
            mime = declared_type.split(";", 1)[0].strip()[:64]
            raise Refused(
                "type-mismatch",
                f"content does not match declared contentType {mime} "
                f"(the bytes are {_described(detected)})",
            )
        content_type = detected or ""
        if detected == sniff.TEXT:
            content_type = (declared_type or "text/plain").split(";", 1)[0].strip().lower()
        return Screened(self._sanitised(data, content_type), content_type)

    def _sanitised(self, data: bytes, content_type: str) -> bytes:
        # Each format's parser is imported when a file of its kind first arrives: pypdf, Pillow
        # and pydicom together were a third of carnet's start-up, paid by every CLI command.
        limits = self.limits
        if content_type == sniff.PDF:
            from carnet.screening.pdf import screen_pdf

            screen_pdf(data, limits.max_pdf_pages)
            return data
        if content_type in (sniff.PNG, sniff.JPEG, sniff.GIF):
            from carnet.screening.images import reencode_image

            return reencode_image(data, content_type, limits.max_image_pixels)
        if content_type == sniff.DICOM:
            from carnet.screening.dicom import screen_dicom

            return screen_dicom(data, limits.max_image_pixels, self._embedded)
        if content_type.endswith("xml") and any(d in data for d in _XML_DECLARATIONS):
            raise Refused("xml-entities", "XML with a document type or entities is not accepted")
        return data

    def _embedded(self, data: bytes, declared_type: str) -> bytes:
        return self.screen(data, declared_type).data


def _described(detected: str | None) -> str:
    if detected is None:
        return "of no type Carnet accepts"
    return "text" if detected == sniff.TEXT else detected

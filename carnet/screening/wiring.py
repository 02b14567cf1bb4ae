"""The screening domain's wiring: one screener from the settings, registered on the FHIR write
path before anything else uses the FHIR service."""

from __future__ import annotations

from carnet.fhir.service import FhirService
from carnet.screening.attachments import AttachmentScreening
from carnet.screening.service import Screener, ScreeningLimits
from carnet.settings import Settings


def build(settings: Settings, fhir: FhirService) -> Screener:
    """The screener; every attachment created or updated through ``fhir`` goes through it."""
    screener = Screener(
        ScreeningLimits(
            max_bytes=settings.max_attachment_bytes,
            max_pdf_pages=settings.screening_max_pdf_pages,
            max_image_pixels=settings.screening_max_image_pixels,
        )
    )
    fhir.body_checks.append(AttachmentScreening(screener).check)
    return screener

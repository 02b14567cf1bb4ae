"""The body check screens every inline content of a written body: a Binary, an Attachment at any
depth, in contained resources and in the entries of a stored Bundle; a body without any is left
as it is."""

from __future__ import annotations

import base64
import copy

import pytest

from carnet.fhir.errors import FhirError
from carnet.screening.attachments import AttachmentScreening
from carnet.screening.service import Screener, ScreeningLimits
from tests.support import hostile_files

CHECK = AttachmentScreening(Screener(ScreeningLimits(1 << 20, 10, 10**6))).check
HOSTILE = base64.b64encode(hostile_files.pdf_with_javascript()).decode()


def _document(data: str) -> dict[str, object]:
    attachment = {"contentType": "application/pdf", "data": data}
    return {"resourceType": "DocumentReference", "content": [{"attachment": attachment}]}


def test_a_hostile_file_in_a_contained_resource_is_refused_where_it_is() -> None:
    body = {"resourceType": "Observation", "contained": [_document(HOSTILE)]}
    with pytest.raises(FhirError) as refused:
        CHECK("Observation", body)
    assert refused.value.status == 422
    assert refused.value.rule == "screening-pdf-javascript"
    [issue] = refused.value.issues
    assert issue.expression == "Observation.contained[0].content[0].attachment.data"


def test_a_hostile_file_in_a_stored_bundle_entry_is_refused() -> None:
    body = {
        "resourceType": "Bundle",
        "type": "document",
        "entry": [{"resource": _document(HOSTILE)}],
    }
    with pytest.raises(FhirError) as refused:
        CHECK("Bundle", body)
    assert refused.value.issues[0].expression == (
        "Bundle.entry[0].resource.content[0].attachment.data"
    )


def test_a_body_without_files_and_sampled_data_are_left_as_they_are() -> None:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "valueSampledData": {"origin": {"value": 0}, "period": 1, "dimensions": 1, "data": "1 2"},
    }
    before = copy.deepcopy(body)
    CHECK("Observation", body)
    assert body == before


def test_an_accepted_image_is_put_back_re_encoded_with_its_size_and_hash() -> None:
    photo = hostile_files.png_with_gps_exif()
    attachment = {
        "contentType": "image/png",
        "data": base64.b64encode(photo).decode(),
        "size": len(photo),
        "hash": "AAAA",
    }
    body = {"resourceType": "Media", "content": attachment}
    CHECK("Media", body)
    stored = base64.b64decode(attachment["data"])
    assert stored != photo and attachment["size"] == len(stored)
    assert attachment["hash"] != "AAAA"

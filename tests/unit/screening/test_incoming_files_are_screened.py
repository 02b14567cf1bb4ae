"""The screening rules on the hostile corpus the tests make (tests/support/hostile_files.py):
what is refused, with which code, and what the stored copy of an accepted file is."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import pytest
from PIL import Image

from carnet.demo.pdf import make_pdf
from carnet.screening.service import Screener, ScreeningLimits
from carnet.screening.verdict import Refused
from tests.support import dicom_files, hostile_files

SCREENER = Screener(ScreeningLimits(max_bytes=1 << 20, max_pdf_pages=3, max_image_pixels=10**6))
PDF = "application/pdf"


def refusal(data: bytes, declared: str | None) -> str:
    with pytest.raises(Refused) as refused:
        SCREENER.screen(data, declared)
    return refused.value.code


HOSTILE_PDFS: list[tuple[Callable[[], bytes], str]] = [
    (hostile_files.pdf_with_javascript, "pdf-javascript"),
    (hostile_files.pdf_with_javascript_behind_an_escaped_name, "pdf-javascript"),
    (hostile_files.pdf_with_launch_action, "pdf-launch"),
    (hostile_files.pdf_with_embedded_file, "pdf-embedded-file"),
    (hostile_files.pdf_with_xfa_form, "pdf-xfa"),
    (hostile_files.polyglot_pdf_zip, "polyglot"),
    (lambda: hostile_files.clean_pdf() + b"<script>x()</script>", "trailing-data"),
    (lambda: b"%PDF-1.7\n1 0 obj << /Type /Catalog", "malformed"),
]


@pytest.mark.parametrize(("make", "code"), HOSTILE_PDFS)
def test_a_pdf_with_active_content_or_a_hidden_file_is_refused(
    make: Callable[[], bytes], code: str
) -> None:
    assert refusal(make(), PDF) == code


def test_a_clean_pdf_is_stored_as_it_came() -> None:
    for data in (
        hostile_files.clean_pdf(),
        hostile_files.pdf_that_opens_on_its_first_page(),  # a destination, not an action
        make_pdf("Compte rendu", ["ligne"]),  # the demo's documents
    ):
        screened = SCREENER.screen(data, "application/pdf; charset=binary")
        assert (screened.data, screened.content_type) == (data, PDF)


def test_a_pdf_with_more_pages_than_the_limit_is_refused() -> None:
    assert SCREENER.screen(hostile_files.clean_pdf(pages=3), PDF).data
    assert refusal(hostile_files.clean_pdf(pages=4), PDF) == "too-many-pages"


def test_a_file_larger_than_the_limit_is_refused_before_it_is_parsed() -> None:
    assert refusal(b"a" * ((1 << 20) + 1), "text/plain") == "too-large"


def test_an_executable_declared_as_a_pdf_is_refused() -> None:
    assert refusal(hostile_files.executable_named_pdf(), PDF) == "executable"
    assert refusal(b"\x7fELF\x02\x01\x01" + bytes(64), PDF) == "executable"
    assert refusal(b"#!/bin/sh\nrm -rf /\n", "text/plain") == "executable"


def test_text_that_starts_like_a_signature_is_still_text() -> None:
    for note in (b"MZ: patient stable", b"BZh, see letter", b"#! not a script"):
        assert SCREENER.screen(note, "text/plain").data == note


@pytest.mark.parametrize("declared", ["application/zip", PDF, "text/plain", None])
def test_archives_are_refused_whatever_they_are_declared_as(declared: str | None) -> None:
    assert refusal(hostile_files.zip_archive(), declared) == "archive"
    assert refusal(b"\x1f\x8b\x08\x00" + bytes(20), declared) == "archive"


def test_the_type_is_read_from_the_bytes_and_a_disagreeing_declaration_is_refused() -> None:
    assert refusal(hostile_files.clean_pdf(), "image/png") == "type-mismatch"
    assert refusal(hostile_files.png_with_gps_exif(), "image/jpeg") == "type-mismatch"
    assert refusal(b"<html></html>", PDF) == "type-mismatch"
    assert refusal(b"\xff\xfe\xfa not utf-8", "text/plain") == "type-mismatch"
    assert SCREENER.screen(b"<html></html>", "text/html").content_type == "text/html"
    assert SCREENER.screen(hostile_files.clean_pdf(), None).content_type == PDF


def test_content_of_no_accepted_type_is_refused() -> None:
    assert refusal(bytes(range(256)), "application/octet-stream") == "type-mismatch"
    assert refusal(bytes(range(256)), None) == "unsupported-type"
    assert refusal(b"text with a \x00 NUL", None) == "unsupported-type"


def test_xml_declaring_entities_is_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><d>&a;</d>'
    assert refusal(bomb, "application/xml") == "xml-entities"
    cda = b'<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"/>'
    assert SCREENER.screen(cda, "text/xml").data == cda


def test_a_decompression_bomb_is_refused_from_its_header_before_decoding() -> None:
    started = time.perf_counter()
    assert refusal(hostile_files.decompression_bomb_png(), "image/png") == "decompression-bomb"
    # Just over the limit, under Pillow's own guard: refused by the setting.
    assert refusal(hostile_files.decompression_bomb_png(side=1001), "image/png") == (
        "decompression-bomb"
    )
    assert time.perf_counter() - started < 1.0  # nothing was decoded


def test_a_truncated_image_is_refused() -> None:
    assert refusal(hostile_files.truncated_jpeg(), "image/jpeg") == "malformed"
    assert refusal(b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png") == "malformed"


def test_the_stored_copy_of_a_photo_has_no_gps_or_other_exif() -> None:
    photo = hostile_files.png_with_gps_exif()
    with Image.open(io.BytesIO(photo)) as original:
        assert original.getexif().get_ifd(hostile_files.GPS_IFD)  # the control: GPS is there
    screened = SCREENER.screen(photo, "image/png")
    with Image.open(io.BytesIO(screened.data)) as stored:
        assert not stored.getexif()
        assert stored.size == (32, 32)
        assert stored.getpixel((0, 0)) == (10, 120, 200)
    assert b"CarnetTestCamera" not in screened.data
    assert b"eXIf" not in screened.data


def test_a_jpeg_is_re_encoded_and_stays_a_jpeg() -> None:
    screened = SCREENER.screen(hostile_files.jpeg(), "image/jpeg")
    with Image.open(io.BytesIO(screened.data)) as stored:
        assert (stored.format, stored.size) == ("JPEG", (64, 48))


def test_dicom_is_parsed_and_its_preamble_cleared_in_the_stored_copy() -> None:
    image = dicom_files.dicom_image(preamble=b"II*\x00" + bytes(124))
    screened = SCREENER.screen(image, "application/dicom")
    assert screened.data[:128] == bytes(128)
    assert screened.data[128:] == image[128:]


def test_a_dicom_that_is_also_an_executable_is_refused() -> None:
    polyglot = dicom_files.dicom_image(preamble=b"MZ" + bytes(126))
    assert refusal(polyglot, "application/dicom") == "executable"


def test_a_dicom_declaring_too_many_pixels_or_broken_is_refused() -> None:
    assert refusal(dicom_files.dicom_declaring_huge_image(), "application/dicom") == (
        "decompression-bomb"
    )
    broken = dicom_files.dicom_image()[:140]
    assert refusal(broken, "application/dicom") == "malformed"
    cut_short = dicom_files.dicom_image(64, 64)[:-100]
    assert refusal(cut_short, "application/dicom") == "malformed"


def test_a_document_inside_a_dicom_is_screened_like_any_other() -> None:
    clean = dicom_files.dicom_encapsulating(hostile_files.clean_pdf())
    assert SCREENER.screen(clean, "application/dicom").content_type == "application/dicom"
    hostile = dicom_files.dicom_encapsulating(hostile_files.pdf_with_javascript())
    assert refusal(hostile, "application/dicom") == "pdf-javascript"

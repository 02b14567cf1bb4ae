"""A corpus of hostile files, made here by the tests (never downloaded): PDFs with active content
or embedded files, polyglots, a decompression bomb, a truncated image, an executable in disguise,
and a photo with GPS coordinates in its EXIF."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, NameObject, TextStringObject


def _written(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _one_page() -> PdfWriter:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    return writer


def clean_pdf(pages: int = 1) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    return _written(writer)


def pdf_of_size(size: int) -> bytes:
    """A clean one-page PDF of exactly ``size`` bytes (a /Subject of the right length pads it)."""

    def with_subject(length: int) -> bytes:
        writer = _one_page()
        writer.add_metadata({"/Subject": "x" * length})
        return _written(writer)

    base = len(with_subject(0))
    padded = with_subject(size - base)
    assert len(padded) == size, (len(padded), size)
    return padded


def pdf_with_javascript() -> bytes:
    """Document-level JavaScript: the catalog's /Names /JavaScript tree, run on opening."""
    writer = _one_page()
    action = writer._add_object(
        DictionaryObject(
            {
                NameObject("/S"): NameObject("/JavaScript"),
                NameObject("/JS"): TextStringObject("app.alert('x');"),
            }
        )
    )
    scripts = DictionaryObject(
        {NameObject("/Names"): ArrayObject([TextStringObject("open"), action])}
    )
    writer._root_object[NameObject("/Names")] = DictionaryObject(
        {NameObject("/JavaScript"): writer._add_object(scripts)}
    )
    return _written(writer)


def pdf_with_javascript_behind_an_escaped_name() -> bytes:
    """/JavaScript spelled /J#61vaScript: the same name to a PDF reader, not to a byte scan."""
    writer = _one_page()
    action = DictionaryObject(
        {
            NameObject("/S"): NameObject("/JavaScript"),
            NameObject("/JS"): TextStringObject("app.alert('x');"),
        }
    )
    writer._root_object[NameObject("/OpenAction")] = writer._add_object(action)
    raw = _written(writer)
    return raw.replace(b"/JavaScript", b"/J#61vaScript").replace(b"/JS ", b"/J#53 ")


def pdf_with_launch_action() -> bytes:
    writer = _one_page()
    launch = DictionaryObject(
        {
            NameObject("/S"): NameObject("/Launch"),
            NameObject("/F"): TextStringObject("cmd.exe"),
        }
    )
    writer._root_object[NameObject("/OpenAction")] = writer._add_object(launch)
    return _written(writer)


def pdf_with_embedded_file() -> bytes:
    writer = _one_page()
    writer.add_attachment("readme.txt", b"an attached file")
    return _written(writer)


def pdf_with_xfa_form() -> bytes:
    writer = _one_page()
    form = DictionaryObject(
        {
            NameObject("/Fields"): ArrayObject(),
            NameObject("/XFA"): TextStringObject("<xdp:xdp/>"),
        }
    )
    writer._root_object[NameObject("/AcroForm")] = writer._add_object(form)
    return _written(writer)


def pdf_that_opens_on_its_first_page() -> bytes:
    """An /OpenAction that is a destination (page and view): harmless, accepted."""
    writer = _one_page()
    page = writer.pages[0].indirect_reference
    writer._root_object[NameObject("/OpenAction")] = ArrayObject([page, NameObject("/Fit")])
    return _written(writer)


def zip_archive(name: str = "notes.txt", content: bytes = b"hello") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, content)
    return out.getvalue()


def polyglot_pdf_zip() -> bytes:
    """A PDF that is also a ZIP: readers open the PDF, unzip tools the archive at its end."""
    return clean_pdf() + zip_archive("payload.exe", b"MZ payload")


def executable_named_pdf() -> bytes:
    """The first bytes of a Windows PE executable, to be declared as application/pdf."""
    return b"MZ\x90\x00\x03\x00\x00\x00" + bytes(56) + b"PE\x00\x00" + bytes(200)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def decompression_bomb_png(side: int = 100_000) -> bytes:
    """A PNG of a few hundred bytes declaring side x side pixels (10^10 by default) of one bit."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 4096, 9)  # the first rows; a decoder would want far more
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def png_without_metadata() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 8), (0, 128, 64)).save(out, format="PNG")
    return out.getvalue()


def truncated_jpeg() -> bytes:
    whole = jpeg((256, 256))
    return whole[: len(whole) // 2]


GPS_IFD = 0x8825


def png_with_gps_exif() -> bytes:
    """A small PNG whose EXIF holds GPS coordinates (48.85 N, 2.35 E) and a camera maker."""
    exif = Image.Exif()
    exif[0x010F] = "CarnetTestCamera"  # Make
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 21.0, 3.0)})
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 120, 200)).save(out, format="PNG", exif=exif)
    return out.getvalue()

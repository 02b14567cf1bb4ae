"""DICOM parsed by pydicom within limits: a well-formed Part 10 file, a bounded image, and its
128-byte preamble cleared in the stored copy (the preamble is free space that can make the file
also a Windows executable, CVE-2019-11687)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import pydicom
from pydicom.errors import InvalidDicomError

from carnet.screening.verdict import Refused

_PREAMBLE = 128
_MAX_FRAMES = 4096
_MAX_FRAMES_OF_LIMIT = 8  # a multi-frame file may hold this many full-size frames' pixels


def screen_dicom(
    data: bytes, max_pixels: int, screen_embedded: Callable[[bytes, str], bytes]
) -> bytes:
    """The DICOM file with its preamble cleared, or refused; an encapsulated document (a PDF,
    a CDA) inside is screened by ``screen_embedded`` like any other file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on tolerable deviations
        try:
            dataset = pydicom.dcmread(io.BytesIO(data))
            for element in dataset.iterall():  # every value read and converted: none cut short
                _ = element.value
            if "TransferSyntaxUID" not in dataset.file_meta or "SOPClassUID" not in dataset:
                raise Refused("malformed", "the DICOM file lacks its transfer syntax or class")
            rows = int(dataset.get("Rows", 0) or 0)
            columns = int(dataset.get("Columns", 0) or 0)
            frames = int(dataset.get("NumberOfFrames", 1) or 1)
            embedded = dataset.get("EncapsulatedDocument")
            embedded_type = str(dataset.get("MIMETypeOfEncapsulatedDocument", ""))
        except Refused:
            raise
        except (InvalidDicomError, ValueError, TypeError, KeyError, OSError, EOFError):
            raise Refused("malformed", "the DICOM file cannot be parsed") from None
    if rows * columns > max_pixels:
        raise Refused("decompression-bomb", "the DICOM image declares too many pixels")
    if frames > _MAX_FRAMES or rows * columns * frames > max_pixels * _MAX_FRAMES_OF_LIMIT:
        raise Refused("too-large", "the DICOM series declares too many frames or pixels")
    _refuse_short_pixel_data(dataset, rows * columns * frames)
    if embedded is not None:
        document = bytes(embedded).rstrip(b"\x00")  # padded to an even length
        screen_embedded(document, embedded_type or "application/octet-stream")
    return bytes(_PREAMBLE) + data[_PREAMBLE:]


def _refuse_short_pixel_data(dataset: pydicom.Dataset, pixels: int) -> None:
    """Uncompressed pixel data shorter than its header declares: a file cut short."""
    pixel_data = dataset.get("PixelData")
    if pixel_data is None or dataset.file_meta.TransferSyntaxUID.is_compressed:
        return
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    bits = int(dataset.get("BitsAllocated", 8) or 8)
    if len(pixel_data) * 8 < pixels * samples * bits:
        raise Refused("malformed", "the DICOM pixel data is shorter than its header declares")

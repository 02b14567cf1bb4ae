"""Small DICOM Part 10 files made with pydicom for the screening tests."""

from __future__ import annotations

import io

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"


def _file(dataset: Dataset, sop_class: str, preamble: bytes) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta = meta
    dataset.SOPClassUID = sop_class
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.preamble = preamble
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def dicom_image(rows: int = 8, columns: int = 8, preamble: bytes = bytes(128)) -> bytes:
    """A monochrome 8-bit image of rows x columns pixels (its pixel data matches)."""
    dataset = Dataset()
    dataset.PatientID = "TEST-0001"
    dataset.Modality = "OT"
    dataset.Rows = rows
    dataset.Columns = columns
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 8
    dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    dataset.PixelData = bytes(rows * columns)
    return _file(dataset, SECONDARY_CAPTURE, preamble)


def dicom_declaring_huge_image(side: int = 60_000) -> bytes:
    """An image header declaring side x side pixels, with a few bytes of pixel data."""
    dataset = Dataset()
    dataset.Rows = side
    dataset.Columns = side
    dataset.SamplesPerPixel = 1
    dataset.BitsAllocated = 8
    dataset.PixelData = bytes(64)
    return _file(dataset, SECONDARY_CAPTURE, bytes(128))


def dicom_encapsulating(document: bytes, mime: str = "application/pdf") -> bytes:
    """An Encapsulated PDF (or CDA) instance carrying ``document``."""
    dataset = Dataset()
    dataset.MIMETypeOfEncapsulatedDocument = mime
    dataset.EncapsulatedDocument = document + (b"\x00" if len(document) % 2 else b"")
    return _file(dataset, ENCAPSULATED_PDF, bytes(128))

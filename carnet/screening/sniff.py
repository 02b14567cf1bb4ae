"""The content type read from the bytes, never from what the depositor declared."""

from __future__ import annotations

from carnet.screening.verdict import Refused

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
GIF = "image/gif"
DICOM = "application/dicom"
TEXT = "text"  # UTF-8 text: plain, HTML, CSV, XML (CDA), JSON; the declared subtype stands

# Signatures of archives and executables: never accepted, whatever they are declared as.
_ARCHIVES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"PK\x03\x04", "ZIP archive"),
    (0, b"PK\x05\x06", "ZIP archive"),
    (0, b"PK\x07\x08", "ZIP archive"),
    (0, b"\x1f\x8b", "gzip archive"),
    (4, b"\x31\x41\x59\x26\x53\x59", "bzip2 archive"),  # after "BZh" and the block size
    (0, b"\xfd7zXZ\x00", "xz archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "7z archive"),
    (0, b"Rar!\x1a\x07", "RAR archive"),
    (0, b"\x28\xb5\x2f\xfd", "zstd archive"),
    (0, b"MSCF\x00\x00\x00\x00", "cabinet archive"),
    (257, b"ustar", "tar archive"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE compound file (macros)"),
)
_EXECUTABLES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"MZ", "Windows executable"),  # with a NUL in its header: not a note starting "MZ"
    (0, b"\x7fELF", "ELF executable"),
    (0, b"\xfe\xed\xfa\xce", "Mach-O executable"),
    (0, b"\xfe\xed\xfa\xcf", "Mach-O executable"),
    (0, b"\xce\xfa\xed\xfe", "Mach-O executable"),
    (0, b"\xcf\xfa\xed\xfe", "Mach-O executable"),
    (0, b"\xca\xfe\xba\xbe", "Mach-O or Java class"),
    (0, b"#!/", "script"),
    (0, b"\x00asm", "WebAssembly module"),
)
# A ZIP is read from its end (the end-of-central-directory record sits within the last 64 KiB +
# 22 bytes): one appended to another format makes a polyglot that an unzip tool opens.
_ZIP_END = b"PK\x05\x06"
_ZIP_END_WINDOW = 65_535 + 22


def _starts(data: bytes, offset: int, signature: bytes) -> bool:
    return data[offset : offset + len(signature)] == signature


def _really(signature: bytes, data: bytes) -> bool:
    """Short signatures that text may start with need their binary header too."""
    if signature == b"MZ":
        return b"\x00" in data[:64]
    if signature.startswith(b"\x31\x41"):
        return data.startswith(b"BZh")
    return True


def refuse_archives_and_executables(data: bytes) -> None:
    """Refuse archives, executables and a ZIP hidden at the end of another format."""
    for table, code in ((_ARCHIVES, "archive"), (_EXECUTABLES, "executable")):
        for offset, signature, what in table:
            if _starts(data, offset, signature) and _really(signature, data):
                raise Refused(code, f"a {what} is never accepted")
    if _ZIP_END in data[-_ZIP_END_WINDOW:]:
        raise Refused("polyglot", "the file also reads as a ZIP archive")


def sniff(data: bytes) -> str | None:
    """The type the bytes are, among those Carnet accepts (None: none of them); archives,
    executables and polyglots are refused here."""
    refuse_archives_and_executables(data)
    if _starts(data, 0, b"%PDF-"):
        return PDF
    if _starts(data, 128, b"DICM"):  # an encapsulated PDF is screened inside (dicom.py)
        return DICOM
    if b"%PDF-" in data[:1024]:  # readers look for the header in the first KiB: a disguise
        raise Refused("polyglot", "a PDF header hidden after other content")
    if _starts(data, 0, b"\x89PNG\r\n\x1a\n"):
        return PNG
    if _starts(data, 0, b"\xff\xd8\xff"):
        return JPEG
    if _starts(data, 0, b"GIF87a") or _starts(data, 0, b"GIF89a"):
        return GIF
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if b"\x00" in data else TEXT


def declared_matches(declared: str, detected: str | None) -> bool:
    """Whether the declared content type agrees with the one read from the bytes."""
    mime = declared.split(";", 1)[0].strip().lower()
    if detected == TEXT:
        return (
            mime.startswith("text/")
            or mime in ("application/json", "application/fhir+json")
            or (mime.endswith("xml"))
        )
    return mime == detected or (detected == JPEG and mime == "image/jpg")

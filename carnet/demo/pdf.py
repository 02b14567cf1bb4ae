"""A minimal hand-written PDF 1.4 writer for demo documents (one page, Helvetica)."""

from __future__ import annotations

__all__ = ["make_pdf"]

_PAGE_WIDTH = 595  # A4 in points
_PAGE_HEIGHT = 842
_MARGIN = 56
_TITLE_SIZE = 16
_BODY_SIZE = 11
_LEADING = 15


def _pdf_string(text: str) -> bytes:
    """Encode text as a PDF literal string for a WinAnsiEncoding Helvetica font."""
    # cp1252 is what WinAnsiEncoding maps to; characters outside it become "?".
    raw = text.encode("cp1252", errors="replace")
    out = bytearray(b"(")
    for byte in raw:
        if byte in b"()\\":
            out += b"\\" + bytes([byte])
        elif byte < 0x20 or byte > 0x7E:
            # Octal escapes keep the file 7-bit clean and immune to line-end rewriting.
            out += f"\\{byte:03o}".encode("ascii")
        else:
            out.append(byte)
    out += b")"
    return bytes(out)


def _content_stream(title: str, lines: list[str]) -> bytes:
    y = _PAGE_HEIGHT - _MARGIN
    ops = [b"BT", f"/F1 {_TITLE_SIZE} Tf".encode(), f"{_MARGIN} {y} Td".encode()]
    ops.append(_pdf_string(title) + b" Tj")
    ops.append(f"/F1 {_BODY_SIZE} Tf".encode())
    ops.append(f"0 -{_LEADING * 2} Td".encode())
    # Lines that would fall off the bottom of the single page are dropped.
    max_lines = (_PAGE_HEIGHT - 2 * _MARGIN) // _LEADING - 2
    for index, line in enumerate(lines[:max_lines]):
        if index:
            ops.append(f"0 -{_LEADING} Td".encode())
        ops.append(_pdf_string(line) + b" Tj")
    ops.append(b"ET")
    return b"\n".join(ops) + b"\n"


def make_pdf(title: str, lines: list[str]) -> bytes:
    """Return a small valid one-page PDF 1.4 showing ``title`` then ``lines``.

    The file is written by hand: five objects (catalog, page tree, page, font,
    content stream), a cross-reference table with exact byte offsets, and a trailer.
    """
    content = _content_stream(title, lines)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_PAGE_WIDTH} {_PAGE_HEIGHT}] "
            "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"endstream",
    ]
    # The binary comment line tells transfer tools the file is not plain text.
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref_offset = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode()
    # Each xref entry is exactly 20 bytes, including the two-character line end.
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref_offset}\n%%EOF".encode()
    return bytes(out)

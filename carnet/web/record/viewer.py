"""A PDF shown in the portal's sandboxed frame, without a script and without the browser's PDF
viewer (Chromium refuses to run it in a sandboxed frame): its pages drawn as PNG images here,
embedded in a small HTML page of their own, served with a CSP that allows nothing but those
images. The bytes never run in the portal's origin; the download stays offered beside.

The pages are drawn by PDFium (pypdfium2), the engine Chromium itself uses for PDFs; documents
were screened on their way in (carnet/screening refuses active content). Bounded: the first
``MAX_PAGES`` pages, each at most ``MAX_SIDE`` pixels on its longer side.
"""

from __future__ import annotations

import base64
import io
from html import escape

import pypdfium2

MAX_PAGES = 20
MAX_SIDE = 1400
WIDTH_POINTS_SCALE = 1.5  # 612 pt (A4/Letter width) -> about 900 px
VIEW_CSP = (
    "sandbox; default-src 'none'; img-src data:; frame-ancestors 'self'; base-uri 'none'; "
    "form-action 'none'"
)


class UnreadablePdfError(ValueError):
    """PDFium could not open the document: the page offers the download only."""


def page_images(pdf: bytes) -> tuple[list[bytes], int]:
    """PNG images of the first pages, and the document's number of pages."""
    try:
        document = pypdfium2.PdfDocument(pdf)
    except pypdfium2.PdfiumError as exc:
        raise UnreadablePdfError(str(exc)) from None
    try:
        count = len(document)
        images = []
        for number in range(min(count, MAX_PAGES)):
            page = document[number]
            width, height = page.get_size()
            scale = min(WIDTH_POINTS_SCALE, MAX_SIDE / max(width, height, 1))
            bitmap = page.render(scale=scale)
            out = io.BytesIO()
            bitmap.to_pil().save(out, format="PNG", optimize=False)
            images.append(out.getvalue())
            page.close()
        return images, count
    finally:
        document.close()


def view_page(images: list[bytes], count: int, *, lang: str, page_label: str, more: str) -> str:
    """The frame's HTML: each page as an ``<img>`` with its text alternative ("Page 1 sur 3");
    ``more`` says the remaining pages are in the download. No style, no script, no link."""
    parts = [
        f'<!doctype html><html lang="{escape(lang)}"><head><meta charset="utf-8">'
        f"<title>{escape(page_label % {'number': 1, 'count': count})}</title></head><body>"
    ]
    for number, png in enumerate(images, start=1):
        alt = escape(page_label % {"number": number, "count": count})
        data = base64.b64encode(png).decode()
        parts.append(f'<p><img src="data:image/png;base64,{data}" alt="{alt}"></p>')
    if count > len(images):
        parts.append(f"<p>{escape(more)}</p>")
    parts.append("</body></html>")
    return "".join(parts)

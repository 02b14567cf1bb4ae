"""PDF screening with pypdf: no active content, no embedded files, a bounded number of pages.

Every object of the file is visited (those the cross-reference tables list, in object streams
too, and those reachable from the trailer), so an action hidden in an unreferenced object or behind
an escaped name (/J#53) is found as well as one in the catalog. A raw scan of the bytes backs it
up for objects a damaged table does not list.
"""

from __future__ import annotations

import io
import re
import warnings
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PyPdfError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject

from carnet.screening.verdict import Refused

# Keys whose presence means active content or a file inside the file.
_FORBIDDEN_KEYS: dict[str, tuple[str, str]] = {
    "/JS": ("pdf-javascript", "the PDF contains JavaScript"),
    "/JavaScript": ("pdf-javascript", "the PDF contains JavaScript"),
    "/Launch": ("pdf-launch", "the PDF launches a program"),
    "/EmbeddedFile": ("pdf-embedded-file", "the PDF carries an embedded file"),
    "/EmbeddedFiles": ("pdf-embedded-file", "the PDF carries an embedded file"),
    "/EF": ("pdf-embedded-file", "the PDF carries an embedded file"),
    "/RichMedia": ("pdf-rich-media", "the PDF carries rich media (Flash, video)"),
    "/RichMediaContent": ("pdf-rich-media", "the PDF carries rich media (Flash, video)"),
    "/XFA": ("pdf-xfa", "the PDF is an XFA form (scripted)"),
}
# Action types (/S) that run code, open programs or files, or send data out.
_FORBIDDEN_ACTIONS: dict[str, tuple[str, str]] = {
    "/JavaScript": ("pdf-javascript", "the PDF contains JavaScript"),
    "/Launch": ("pdf-launch", "the PDF launches a program"),
    "/GoToE": ("pdf-embedded-file", "the PDF opens an embedded file"),
    "/ImportData": ("pdf-action", "the PDF imports outside data"),
    "/SubmitForm": ("pdf-action", "the PDF submits a form to a server"),
    "/RichMediaExecute": ("pdf-rich-media", "the PDF carries rich media (Flash, video)"),
    "/Rendition": ("pdf-action", "the PDF plays media with scripts"),
}
_FORBIDDEN_SUBTYPES: dict[str, tuple[str, str]] = {
    "/RichMedia": ("pdf-rich-media", "the PDF carries rich media (Flash, video)"),
    "/FileAttachment": ("pdf-embedded-file", "the PDF carries an embedded file"),
    "/EmbeddedFile": ("pdf-embedded-file", "the PDF carries an embedded file"),
}
_RAW_NAMES = re.compile(
    rb"/(JavaScript|JS|Launch|EmbeddedFiles?|RichMedia|XFA)(?=[\s/<>\[\]()%{}]|$)"
)
_RAW_CODES: dict[bytes, str] = {
    b"JavaScript": "/JavaScript",
    b"JS": "/JS",
    b"Launch": "/Launch",
    b"EmbeddedFile": "/EmbeddedFile",
    b"EmbeddedFiles": "/EmbeddedFiles",
    b"RichMedia": "/RichMedia",
    b"XFA": "/XFA",
}
_EOF = b"%%EOF"


def screen_pdf(data: bytes, max_pages: int) -> None:
    """Refuse a PDF with active content, embedded files, trailing data, or too many pages."""
    end = data.rfind(_EOF)
    if end < 0:
        raise Refused("malformed", "the PDF has no end-of-file marker")
    if data[end + len(_EOF) :].strip(b"\r\n\t \x00\x0c"):
        raise Refused("trailing-data", "content follows the end of the PDF")
    raw = _RAW_NAMES.search(data)
    if raw is not None:
        _refuse_key(_RAW_CODES[raw.group(1)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pypdf warns on repairable damage; what counts is below
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                raise Refused("pdf-encrypted", "an encrypted PDF cannot be inspected")
            pages = len(reader.pages)
            _visit_all(reader)
        except Refused:
            raise
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError):
            raise Refused("malformed", "the PDF cannot be parsed") from None
        except RecursionError:
            raise Refused("malformed", "the PDF nests objects too deeply") from None
    if pages > max_pages:
        raise Refused("too-many-pages", f"the PDF has {pages} pages, more than {max_pages}")


def _refuse_key(key: str) -> None:
    code, reason = _FORBIDDEN_KEYS[key]
    raise Refused(code, reason)


def _visit_all(reader: PdfReader) -> None:
    seen: set[tuple[int, int]] = set()
    pending: list[Any] = [reader.trailer]
    for generation, numbers in reader.xref.items():
        pending.extend(IndirectObject(number, generation, reader) for number in numbers)
    pending.extend(IndirectObject(number, 0, reader) for number in reader.xref_objStm)
    while pending:
        node = pending.pop()
        if isinstance(node, IndirectObject):
            key = (node.idnum, node.generation)
            if key in seen:
                continue
            seen.add(key)
            node = node.get_object()
        if isinstance(node, DictionaryObject):
            _check_dictionary(node)
            pending.extend(node.values())
        elif isinstance(node, ArrayObject):
            pending.extend(node)


def _check_dictionary(node: DictionaryObject) -> None:
    for key in node:
        if key in _FORBIDDEN_KEYS:
            _refuse_key(str(key))
    action = node.get("/S")
    if isinstance(action, NameObject) and action in _FORBIDDEN_ACTIONS:
        code, reason = _FORBIDDEN_ACTIONS[action]
        raise Refused(code, reason)
    for field in ("/Subtype", "/Type"):
        kind = node.get(field)
        if isinstance(kind, NameObject) and kind in _FORBIDDEN_SUBTYPES:
            code, reason = _FORBIDDEN_SUBTYPES[kind]
            raise Refused(code, reason)
    opening = node.get("/OpenAction")
    if opening is not None:
        opening = opening.get_object()
        # A destination (an array: page and view) only scrolls; an action dictionary may do more.
        if isinstance(opening, DictionaryObject) and opening.get("/S") != "/GoTo":
            raise Refused("pdf-open-action", "the PDF runs an action when opened")

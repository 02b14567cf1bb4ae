"""My data: the whole record as the person may read it, in one zip (EHDS art. 7).

``record.json`` is a FHIR R4 Bundle (type ``collection``) of everything ``Patient/$everything``
gives the caller, page after page, so the archive holds exactly what the API would: masked items
stay in (the patient sees them), items hidden from the patient (``INVISIBLE_PATIENT``) and, for a
representative, from representatives stay out. Each attachment's content is also written as a
file under ``documents/`` so it opens without a FHIR reader. Reading it is audited as any
``$everything``.
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile
from collections.abc import Iterator
from typing import Any

import orjson

from carnet.caller import RequestContext
from carnet.fhir.errors import FhirError
from carnet.fhir.operations.everything import everything
from carnet.fhir.service import FhirService

EXTENSIONS = {
    "application/pdf": "pdf",
    "image/jpeg": "jpg",
    "image/png": "png",
    "text/plain": "txt",
    "text/xml": "xml",
    "application/xml": "xml",
    "application/hl7-v3+xml": "xml",
}
README = """Votre dossier Carnet
====================

record.json : tout votre dossier au format FHIR R4 (un Bundle), lisible par les logiciels de
santé et par les applications que vous choisissez.
documents/ : le contenu des documents (PDF, images, textes), un fichier par pièce jointe, nommé
d'après l'identifiant du document dans record.json.

Ce fichier contient des données de santé : conservez-le en lieu sûr.
"""


class ExportUnavailableError(Exception):
    """No record to export for this caller (not theirs, or none): one answer for both."""


class RecordExport:
    """The person's whole record as a zip archive."""

    def __init__(self, fhir: FhirService, *, base_url: str = "") -> None:
        self.fhir = fhir
        self.base_url = base_url

    def resources(self, ctx: RequestContext, patient_id: str) -> Iterator[dict[str, Any]]:
        """Every resource of the record the caller may read, page after page."""
        page = self.fhir.max_page_size
        offset = 0
        while True:
            params = [("_count", str(page)), ("_offset", str(offset))]
            try:
                bundle = everything(self.fhir, ctx, self.base_url, patient_id, params)
            except FhirError as err:
                if err.status in (403, 404, 410):
                    raise ExportUnavailableError(patient_id) from None
                raise
            entries = bundle.get("entry") or []
            for entry in entries:
                yield entry["resource"]
            offset += len(entries)
            if len(entries) < page:
                return

    def archive(self, ctx: RequestContext, patient_id: str) -> bytes:
        """The zip: README.txt, record.json and documents/."""
        resources = list(self.resources(ctx, patient_id))
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in resources
            ],
        }
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("README.txt", README)
            archive.writestr("record.json", orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
            for name, data in _documents(resources):
                archive.writestr(f"documents/{name}", data)
        return out.getvalue()


def _documents(resources: list[dict[str, Any]]) -> Iterator[tuple[str, bytes]]:
    for resource in resources:
        found = list(_attachments(resource))
        for n, attachment in enumerate(found, start=1):
            try:
                data = base64.b64decode(attachment["data"], validate=True)
            except (binascii.Error, ValueError):
                continue
            kind = str(attachment.get("contentType") or "").split(";", 1)[0].strip().lower()
            suffix = f"-{n}" if len(found) > 1 else ""
            ext = EXTENSIONS.get(kind, "bin")
            yield f"{resource['resourceType']}-{resource['id']}{suffix}.{ext}", data


def _attachments(node: Any) -> Iterator[dict[str, Any]]:
    """Attachments holding their content (``data``), anywhere in a resource."""
    if isinstance(node, dict):
        if isinstance(node.get("data"), str) and "contentType" in node:
            yield node
        for value in node.values():
            yield from _attachments(value)
    elif isinstance(node, list):
        for value in node:
            yield from _attachments(value)

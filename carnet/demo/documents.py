"""Consultation and hospitalisation reports: a PDF wrapped in a DocumentReference."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

from carnet.demo.context import PatientContext
from carnet.demo.dates import REFERENCE_DATE
from carnet.demo.directory import Organization, Practitioner
from carnet.demo.fhir_builders import JSON, concept, ref
from carnet.demo.pdf import make_pdf
from carnet.demo.systems import LOINC


def add_document(
    ctx: PatientContext,
    encounter_id: str,
    end: datetime,
    author: Practitioner,
    summary: list[str],
    klass: str,
    name: JSON,
    custodian: Organization,
) -> None:
    if klass == "IMP":
        loinc, display, title = (
            "34133-9",
            "Summary of episode note",
            "Compte rendu d'hospitalisation",
        )
    else:
        loinc, display, title = "11488-4", "Consult note", "Compte rendu de consultation"
    written = end + timedelta(minutes=ctx.rng.randint(10, 90))
    if written.date() >= REFERENCE_DATE:
        written = end
    patient_line = f"Patient : {' '.join(name['given'])} {name['family']}"
    lines = [
        patient_line,
        f"Né(e) le : {ctx.birth.strftime('%d/%m/%Y')}",
        f"Date : {end.strftime('%d/%m/%Y')}",
        f"Auteur : {author.display}, {author.qualification}",
        "",
        *summary,
        "",
        "Document de démonstration - données entièrement synthétiques.",
    ]
    pdf = make_pdf(title, lines)
    when = ctx.when(written)
    ctx.resources.append(
        {
            "resourceType": "DocumentReference",
            "id": ctx.new_id("documentreference"),
            "status": "current",
            "docStatus": "final",
            "type": concept(LOINC, loinc, display, title),
            "subject": ctx.subject,
            "date": when,
            "author": [ref("Practitioner", author.id)],
            "custodian": ref("Organization", custodian.id),
            "description": title,
            "content": [
                {
                    "attachment": {
                        "contentType": "application/pdf",
                        "language": "fr-FR",
                        "data": base64.b64encode(pdf).decode("ascii"),
                        "size": len(pdf),
                        "title": f"{title} du {end.strftime('%d/%m/%Y')}",
                        "creation": when,
                    }
                }
            ],
            "context": {"encounter": [ref("Encounter", encounter_id)]},
        }
    )

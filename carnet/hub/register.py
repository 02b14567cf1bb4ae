"""The public register of data permits (EHDS art. 58 and 61): who uses which data for what.

Open to all, no sign-in. One entry per application past draft: the organisation (never a person),
title and purpose, datasets, dates, status, the results' address, the three-month decision clock
and the 18-month reminder to publish results. Rendered as JSON and as a plain HTML page (French
first; the portal's templates take over once carnet/web lands).
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from carnet.hub.permits import Permit

STATUS_FR = {
    "submitted": "déposée",
    "under_review": "en instruction",
    "approved": "accordée",
    "rejected": "refusée",
    "active": "en cours",
    "expired": "terminée",
    "revoked": "retirée",
}


def _day(moment: datetime | None) -> str | None:
    return moment.date().isoformat() if moment else None


def register_entry(permit: Permit, now: datetime) -> dict[str, Any]:
    a = permit.application
    return {
        "permit": permit.permit_id,
        "organisation": a.organisation,
        "title": a.title,
        "purpose": a.purpose,
        "publicInterest": a.public_interest,
        "legalBasis": a.legal_basis,
        "datasets": list(a.datasets),
        "deidentification": a.deidentification,
        "status": permit.state,
        "submitted": _day(permit.submitted_at),
        "decided": _day(permit.decided_at),
        "started": _day(permit.activated_at),
        "expires": _day(permit.expires_at),
        "ended": _day(permit.ended_at),
        "results": permit.results_url,
        **permit.clock(now),
    }


def register_html(entries: list[dict[str, Any]]) -> str:
    """The register as one accessible HTML page (a table with a caption and header cells)."""
    rows = []
    for e in entries:
        reminder = (
            "<strong>Résultats attendus : publication en retard</strong>"
            if e["resultsReminder"]
            else escape(e["resultsDue"] or "")
        )
        results = (
            f'<a href="{escape(e["results"])}" rel="noopener">résultats</a>' if e["results"] else ""
        )
        overdue = " (délai dépassé)" if e["decisionOverdue"] else ""
        rows.append(
            "<tr>"
            f"<td>{escape(e['organisation'])}</td>"
            f"<td>{escape(e['title'])}<br><small>{escape(e['purpose'])}</small></td>"
            f"<td>{escape(', '.join(e['datasets']))}</td>"
            f"<td>{escape(STATUS_FR.get(e['status'], e['status']))}</td>"
            f"<td>{escape(e['submitted'] or '')}</td>"
            f"<td>{escape(e['decisionDue'] or '')}{overdue}</td>"
            f"<td>{escape(e['decided'] or '')}</td>"
            f"<td>{escape(e['expires'] or '')}</td>"
            f"<td>{results} {reminder}</td>"
            "</tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="9">Aucun projet pour le moment.</td></tr>'
    return f"""<!doctype html>
<html lang="fr">
<head><meta charset="utf-8"><title>Registre public des autorisations d'accès aux données</title></head>
<body>
<main>
<h1>Registre public des autorisations d'accès aux données de santé</h1>
<p>Chaque demande d'accès à des fins de recherche, sa décision et ses résultats (règlement (UE)
2025/327, articles 58, 61 et 68). <a href="register">Version JSON</a></p>
<table>
<caption>Projets</caption>
<thead><tr><th scope="col">Organisme</th><th scope="col">Projet et finalité</th>
<th scope="col">Données</th><th scope="col">Statut</th><th scope="col">Déposée le</th>
<th scope="col">Décision due le</th><th scope="col">Décidée le</th><th scope="col">Fin</th>
<th scope="col">Résultats</th></tr></thead>
<tbody>
{body}
</tbody>
</table>
</main>
</body>
</html>
"""

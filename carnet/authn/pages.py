"""Server-rendered pages of the authorisation server and the development identity provider:
the grant screen, the list of a person's grants, the login-required and error pages, the dev
IdP's professional picker. French first; no script, no third-party asset; every value escaped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from fastapi.responses import HTMLResponse

from carnet.authn import smart_scopes
from carnet.authn.smart import Grant

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5;color:#1b1b1b}h1{font-size:1.4rem}code{font-size:.85em;color:#555}"
    "label{display:block;margin:.4rem 0}button{padding:.5rem 1rem;margin:.5rem .5rem 0 0}"
    ".en{color:#666;font-size:.9em}"
)
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

RESOURCE_LABELS = {
    "*": "toutes vos données de santé",
    "Observation": "résultats d'analyses et mesures (Observation)",
    "Condition": "problèmes de santé (Condition)",
    "MedicationRequest": "prescriptions (MedicationRequest)",
    "MedicationStatement": "traitements (MedicationStatement)",
    "AllergyIntolerance": "allergies (AllergyIntolerance)",
    "Immunization": "vaccinations (Immunization)",
    "DocumentReference": "documents (DocumentReference)",
    "Patient": "identité administrative (Patient)",
    "Encounter": "consultations et séjours (Encounter)",
    "Procedure": "actes (Procedure)",
    "DiagnosticReport": "comptes rendus (DiagnosticReport)",
}
_VERBS = {"c": "créer", "r": "lire", "u": "modifier", "d": "supprimer", "s": "rechercher"}
OTHER_LABELS = {
    "launch/patient": "savoir quel dossier est le vôtre",
    "openid": "connaître votre identifiant Carnet",
    "fhirUser": "connaître votre identifiant Carnet",
    "profile": "connaître votre identifiant Carnet",
    "offline_access": "garder l'accès quand vous n'êtes pas connecté(e) (jusqu'à révocation)",
    "online_access": "garder l'accès tant que vous êtes connecté(e)",
}


def scope_label(scope: str) -> str:
    """A French sentence for a scope."""
    if scope in OTHER_LABELS:
        return OTHER_LABELS[scope]
    try:
        parsed = smart_scopes.parse_resource_scope(scope)
    except smart_scopes.ScopeError:
        return scope
    if parsed is None:
        return scope
    verbs = ", ".join(_VERBS[p] for p in parsed.permissions)
    what = RESOURCE_LABELS.get(parsed.res_type, parsed.res_type)
    whose = {"patient": "", "user": " (patients que vous suivez)", "system": " (tous)"}
    return f"{verbs} : {what}{whose[parsed.context]}"


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="fr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} · Carnet</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _hidden(fields: dict[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items()
    )


def grant_screen(
    client_name: str,
    scopes: Sequence[str],
    ticket: str,
    action: str,
    *,
    professional: bool = False,
) -> HTMLResponse:
    """The grant screen: what the app asks, one checkbox per scope, approve or refuse."""
    asks = (
        ("agir en votre nom auprès des dossiers de vos patients", "to act on your behalf")
        if professional
        else ("l'accès à votre dossier", "for access to your record")
    )
    boxes = "".join(
        f'<label><input type="checkbox" name="scope" value="{escape(s)}" checked> '
        f"{escape(scope_label(s))} <code>{escape(s)}</code></label>"
        for s in scopes
    )
    body = (
        f"<h1>L'application « {escape(client_name)} » demande {asks[0]}</h1>"
        f'<p class="en">The app asks {asks[1]}.</p>'
        f'<form method="post" action="{escape(action)}">{_hidden({"ticket": ticket})}'
        f"<fieldset><legend>Elle pourra :</legend>{boxes}</fieldset>"
        "<p>Décochez ce que vous ne voulez pas partager. Vous pourrez retirer cet accès à tout "
        "moment depuis la liste de vos applications autorisées.</p>"
        '<button name="decision" value="approve">Autoriser</button>'
        '<button name="decision" value="deny">Refuser</button></form>'
    )
    return page("Autoriser une application", body)


def login_required(continue_url: str, pro_login_url: str, person_login_url: str) -> HTMLResponse:
    """No portal session: log in first (a person on the portal's sign-in page, a professional
    through their identity provider), then continue here."""
    body = (
        "<h1>Connectez-vous pour continuer</h1>"
        '<p class="en">Log in to continue.</p>'
        "<p>Une application demande l'accès à votre dossier. Connectez-vous à Carnet, puis vous "
        "reviendrez ici.</p>"
        f'<p><a href="{escape(person_login_url)}">Patient : se connecter</a> · '
        f'<a href="{escape(pro_login_url)}">Professionnel de santé : se connecter</a> · '
        f'<a href="{escape(continue_url)}">Continuer</a></p>'
    )
    return page("Connexion requise", body, 401)


def error_page(title: str, detail: str, status: int = 400) -> HTMLResponse:
    """An error shown to the user (never redirected to an untrusted address)."""
    return page(title, f"<h1>{escape(title)}</h1><p>{escape(detail)}</p>", status)


def grants_page(grants: Iterable[Grant], ticket: str, action: str) -> HTMLResponse:
    """A person's authorised apps, each with a revoke button."""
    items = "".join(
        f"<li><strong>{escape(g.client_name)}</strong> (depuis le {escape(g.granted_at[:10])})"
        f"<ul>{''.join(f'<li>{escape(scope_label(s))}</li>' for s in g.scopes)}</ul>"
        f'<form method="post" action="{escape(action)}">'
        f"{_hidden({'ticket': ticket, 'client_id': g.client_id})}"
        "<button>Retirer l'accès</button></form></li>"
        for g in grants
    )
    body = '<h1>Applications autorisées</h1><p class="en">Apps you authorised.</p>' + (
        f"<ul>{items}</ul>" if items else "<p>Aucune application n'a accès à votre dossier.</p>"
    )
    return page("Applications autorisées", body)


def professional_picker(
    professionals: Iterable[tuple[str, str, str]], fields: dict[str, str], action: str
) -> HTMLResponse:
    """The development identity provider's login: pick one of the demo professionals."""
    buttons = "".join(
        f'<button name="rpps" value="{escape(rpps)}">{escape(label)} · {escape(profession)} · '
        f"RPPS {escape(rpps)}</button><br>"
        for rpps, profession, label in professionals
    )
    body = (
        "<h1>Fournisseur d'identité de développement</h1>"
        '<p class="en">Development identity provider: not Pro Santé Connect. Loopback only.</p>'
        f'<form method="post" action="{escape(action)}">{_hidden(fields)}{buttons}</form>'
    )
    return page("Connexion professionnelle (développement)", body)

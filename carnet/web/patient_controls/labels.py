"""French words for the codes the services return (message ids; translated where shown)."""

from __future__ import annotations

from carnet.web.i18n import N_

PROFESSIONS = {
    "physician": N_("Médecin"),
    "nurse": N_("Infirmier ou infirmière"),
    "pharmacist": N_("Pharmacien ou pharmacienne"),
    "biologist": N_("Biologiste"),
    "midwife": N_("Sage-femme"),
    "physiotherapist": N_("Masseur-kinésithérapeute"),
    "dentist": N_("Chirurgien-dentiste"),
}

WHY = {
    "care": N_("Soins"),
    "medecin-traitant": N_("Médecin traitant"),
    "emergency": N_("Urgence"),
    "self": N_("Vous-même"),
    "representative": N_("Votre représentant légal"),
    "app": N_("Application autorisée"),
    "platform": N_("Fonctionnement de Carnet"),
}

KIND_FILTERS = (
    ("", N_("Tous")),
    ("care", N_("Soins")),
    ("medecin-traitant", N_("Médecin traitant")),
    ("emergency", N_("Urgence")),
    ("self", N_("Vous-même")),
    ("representative", N_("Représentant légal")),
    ("app", N_("Application")),
    ("refused", N_("Accès refusés")),
)

EMERGENCY_REASONS = {
    "unconscious": N_("patient inconscient"),
    "life-threatening": N_("pronostic vital engagé"),
    "unable-to-consent": N_("patient hors d'état de consentir"),
    "other-emergency": N_("autre urgence"),
}

ACTIONS = {
    "read": N_("a consulté"),
    "vread": N_("a consulté une version précédente"),
    "search": N_("a recherché dans votre dossier"),
    "history": N_("a consulté l'historique d'un élément"),
    "everything": N_("a consulté l'ensemble du dossier"),
    "summary": N_("a consulté la synthèse"),
    "create": N_("a ajouté"),
    "post": N_("a ajouté"),
    "update": N_("a modifié"),
    "put": N_("a modifié"),
    "delete": N_("a supprimé"),
    "export": N_("a exporté"),
    "break-glass": N_("a ouvert un accès d'urgence"),
    "break-glass-refused": N_("accès d'urgence refusé"),
    "mask": N_("a masqué un élément"),
    "unmask": N_("a rendu visible un élément"),
    "mask-preview": N_("a vérifié qui voit un élément"),
    "block": N_("a bloqué un professionnel"),
    "unblock": N_("a débloqué un professionnel"),
    "preferences": N_("a changé ses préférences"),
    "alerts": N_("a changé ses alertes"),
    "alerts-read": N_("a consulté ses alertes"),
    "controls": N_("a voulu changer les réglages"),
    "controls-read": N_("a consulté les réglages"),
    "care-declare": N_("a déclaré un professionnel qui le soigne"),
    "care-end": N_("a mis fin à une relation de soin"),
    "care-begin": N_("a commencé une prise en charge"),
    "history-read": N_("a voulu lire l'historique des accès"),
    "record-close": N_("a fermé l'espace"),
    "record-object": N_("s'est opposé à l'espace"),
    "record-open": N_("a ouvert l'espace"),
    "record-reopen": N_("a rouvert l'espace"),
    "record-provision": N_("a créé l'espace"),
    "record-notify": N_("a envoyé une notification"),
    "record-representative": N_("a enregistré un représentant légal"),
    "login": N_("s'est connecté"),
}

ACTORS = {
    "person": N_("Une personne"),
    "app": N_("Une application"),
    "backend": N_("Un logiciel de santé"),
    "operator": N_("L'exploitant de Carnet"),
    "platform": N_("Le service Carnet"),
    "professional": N_("Un professionnel de santé"),
}

REPRESENTATION_KINDS = {
    "parent": N_("Père ou mère"),
    "guardian": N_("Tuteur ou tutrice"),
    "curator": N_("Curateur ou curatrice"),
}

VERIFICATION = {
    "verified": N_(
        "Vérifié : cette ligne figure bien dans le journal scellé et signé de Carnet. Elle ne peut "
        "plus être modifiée ni effacée sans que cela se voie."
    ),
    "pending": N_(
        "En cours de scellement : cette ligne est enregistrée, mais pas encore scellée dans le "
        "journal signé. Réessayez dans quelques minutes."
    ),
    "failed": N_(
        "Échec de la vérification : cette ligne ne correspond pas au journal signé. Téléchargez "
        "la preuve et signalez-le au délégué à la protection des données."
    ),
}

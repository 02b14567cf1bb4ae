"""The patient's controls area of the portal: its routes and its cards on the space page."""

from __future__ import annotations

from fastapi import APIRouter

from carnet.web.i18n import N_
from carnet.web.patient_controls import controls, history, space
from carnet.web.space import SpaceLink, register_space_link

router = APIRouter(include_in_schema=False)
router.include_router(controls.router)
router.include_router(history.router)
router.include_router(space.router)

for link in (
    SpaceLink(
        "/espace/controles",
        N_("Qui voit mon dossier"),
        N_("Masquer un document, bloquer un professionnel, accès en urgence, recherche."),
        order=40,
    ),
    SpaceLink(
        "/espace/historique",
        N_("Historique des accès"),
        N_("Qui a consulté votre dossier, quand et pourquoi, avec la preuve."),
        order=50,
    ),
    SpaceLink(
        "/espace/alertes",
        N_("Mes alertes"),
        N_("Être prévenu d'un premier accès, d'un nouveau document, d'un accès en urgence."),
        order=60,
    ),
    SpaceLink(
        "/espace/representants",
        N_("Représentants légaux"),
        N_("Vos représentants, et l'espace des personnes que vous représentez."),
        order=70,
    ),
    SpaceLink(
        "/espace/mes-donnees",
        N_("Mes données"),
        N_("Télécharger tout votre dossier, ou fermer votre espace."),
        order=80,
    ),
):
    register_space_link(link)

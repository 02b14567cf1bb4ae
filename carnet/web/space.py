"""The cards of the person's space page (/espace): each area registers its own, at import, so
no area edits another's template::

    register_space_link(SpaceLink("/dossier", N_("Mon dossier"), N_("Vos documents..."), order=10))
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpaceLink:
    path: str
    title: str  # French, the message id (marked with N_)
    summary: str
    order: int = 100


_LINKS: dict[str, SpaceLink] = {}


def register_space_link(link: SpaceLink) -> SpaceLink:
    _LINKS[link.path] = link
    return link


def space_links() -> list[SpaceLink]:
    """The cards in their order."""
    return sorted(_LINKS.values(), key=lambda link: (link.order, link.path))

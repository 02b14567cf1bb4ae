"""Every kind of item of the medical profile, in the page's order."""

from __future__ import annotations

from carnet.web.profile.clinical_kinds import (
    ALLERGIES,
    FAMILY,
    HISTORY,
    MEASUREMENTS,
    TREATMENTS,
    VACCINATIONS,
)
from carnet.web.profile.kind import Kind
from carnet.web.profile.personal_kinds import (
    CONTACTS,
    DIRECTIVES,
    ORGAN_DONATION_KIND,
    PROFESSIONALS,
)

KINDS: dict[str, Kind] = {
    kind.slug: kind
    for kind in (
        HISTORY,
        ALLERGIES,
        TREATMENTS,
        FAMILY,
        VACCINATIONS,
        MEASUREMENTS,
        DIRECTIVES,
        ORGAN_DONATION_KIND,
        CONTACTS,
        PROFESSIONALS,
    )
}

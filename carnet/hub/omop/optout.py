"""Who may not be in any extract: the one place the extraction asks it (re-point it here).

Today the research opt-out is the patient's preference kept by the policy's controls service
(``access_preference.research_optout``); the record domain may take it over. The extraction asks
at extraction time, once per person (a batch of people per query), through this function only.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol


class OptOutSource(Protocol):
    def research_opted_out_among(self, patient_ids: Collection[str]) -> set[str]: ...


class HasControls(Protocol):
    @property
    def controls(self) -> OptOutSource: ...


def research_opted_out(services: HasControls, patient_ids: Collection[str]) -> set[str]:
    """Those of ``patient_ids`` who refused the secondary use of their data, as of now."""
    return services.controls.research_opted_out_among(patient_ids)

"""Who may not be in any extract: the one place the extraction asks it.

The research opt-out has one source of truth, its history kept by the policy domain
(carnet/policy/research_optout.py, ``access_research_optout``, docs/record.md). The extraction asks it as it stood at the
extraction's instant (fixed once when the extraction starts, so a change during a long run does
not split a person across batches), once per batch of people first met, through this function.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol


class OptOutSource(Protocol):
    def opted_out_among(self, patient_ids: Collection[str], at: datetime) -> set[str]: ...


class HasResearchOptOut(Protocol):
    @property
    def research_optout(self) -> OptOutSource: ...


def research_opted_out(
    services: HasResearchOptOut, patient_ids: Collection[str], at: datetime
) -> set[str]:
    """Those of ``patient_ids`` who had refused the secondary use of their data at ``at``."""
    return services.research_optout.opted_out_among(patient_ids, at)

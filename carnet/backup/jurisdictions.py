"""Where a backup target may be: a declared country of the European Economic Area (HDS 2024
requires health data hosted in the EEA)."""

from __future__ import annotations

EEA = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
    ]
)


def check_jurisdiction(code: str) -> str | None:
    """Why a target in ``code`` is refused, or None when it may hold backups."""
    if not code:
        return (
            "the backup target's jurisdiction is not declared (backup_jurisdiction, --jurisdiction)"
        )
    if code not in EEA:
        return f"the backup target's jurisdiction {code} is outside the European Economic Area"
    return None

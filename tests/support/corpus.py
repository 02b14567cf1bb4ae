"""Where the shared FHIR corpus is: beside the repository (CI clones main next to shared/); a
clone made elsewhere (a clean-clone check in /tmp) falls back to CARNET_CORPUS or
/work/shared/corpus. The corpus is read in place, never copied into the repository."""

from __future__ import annotations

import os
from pathlib import Path


def find_corpus() -> Path:
    if "CARNET_CORPUS" in os.environ:
        return Path(os.environ["CARNET_CORPUS"])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "corpus"
        if candidate.is_dir():
            return candidate
    return Path("/work/shared/corpus")


CORPUS = find_corpus()

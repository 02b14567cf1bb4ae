"""Synthetic French population as FHIR R4 transaction Bundles.

Everything here is invented: names come from Faker's French locale, phone numbers
from the ranges ARCEP reserves for fiction, e-mails from reserved example domains,
and NIRs are built with valid keys but random order numbers.  Output is fully
deterministic for a given seed so demo loads are reproducible.

Every entry is a ``PUT <Type>/<id>`` with an id derived by uuid5 from the seed and a
stable key, so loading the same bundles twice leaves the server unchanged.

This module is the public entry point; the work is done by its sibling modules:
``fhir_builders`` (JSON helpers), ``systems`` (code systems), ``dates``,
``directory`` (shared organisations and practitioners), ``catalogue`` (clinical
tables), ``context``, ``clinical``, ``documents`` and ``patient``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from faker import Faker

from carnet.demo.dates import REFERENCE_DATE
from carnet.demo.directory import build_directory
from carnet.demo.fhir_builders import JSON, bundle, resource_id
from carnet.demo.patient import patient_bundle
from carnet.demo.systems import FINESS_SYSTEM, INS_NIR_SYSTEM, RPPS_SYSTEM

__all__ = [
    "DEFAULT_SEED",
    "FINESS_SYSTEM",
    "INS_NIR_SYSTEM",
    "JSON",
    "REFERENCE_DATE",
    "RPPS_SYSTEM",
    "generate_population",
    "generate_shared_resources",
    "resource_id",
]

DEFAULT_SEED: Final = 20261123


def generate_shared_resources(seed: int = DEFAULT_SEED) -> JSON:
    """Return one transaction Bundle with the shared Organizations and Practitioners.

    Patient bundles from :func:`generate_population` with the same seed reference
    these resources, so this bundle must be loaded first.
    """
    return bundle(list(build_directory(seed).resources))


def generate_population(count: int, seed: int = DEFAULT_SEED) -> Iterator[JSON]:
    """Yield ``count`` FHIR R4 transaction Bundles, one synthetic patient each.

    Output is deterministic for a given seed, and patient ``i`` does not depend on
    ``count`` (each patient has its own random stream).  References to practitioners
    and organisations point at :func:`generate_shared_resources` with the same seed.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    directory = build_directory(seed)
    fake = Faker("fr_FR")
    for index in range(count):
        yield patient_bundle(seed, index, directory, fake)

"""Carnet: a sovereign health-data platform (personal health record and research hub) on FHIR R4."""

__version__ = "0.1.0"

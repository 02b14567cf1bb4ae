"""Synthetic demo data: a fake French population as FHIR R4 transaction Bundles."""

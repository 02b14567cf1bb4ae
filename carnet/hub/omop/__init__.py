"""Extraction of the record store to OMOP CDM 5.4 for an active research permit."""

"""FHIR R4 engine: validation, search index, query compiler, bundles, and the resource repository."""

"""FHIR operations, one module each: $everything, $summary, bulk $export and $import."""

"""The medical profile the person completes ("Mon profil médical"): patient-authored FHIR items."""

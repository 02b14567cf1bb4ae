"""The professionals' workspace: find a patient, the record, search, deposit, emergency access."""

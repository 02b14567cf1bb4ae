"""Key material lives here and nowhere else: master keyring, per-patient data keys, blind indexes."""

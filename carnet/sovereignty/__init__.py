"""The sovereignty report: every place data, keys, backups, logs and notifications go, with the
jurisdiction and certifications the operator declared for it (HDS 2024 requires EEA hosting)."""

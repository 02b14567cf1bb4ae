"""Backups that restore: encrypted, deduplicated snapshots of the database and the blob store."""

"""Database plumbing: engine, shared metadata, migrations. SQLite by default, PostgreSQL in production."""

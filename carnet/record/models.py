"""Tables of the personal space (filled in by the accounts work of issue 5)."""

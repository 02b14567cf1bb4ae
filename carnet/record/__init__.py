"""The personal health space: accounts (auto-creation, objection, closure), representatives."""

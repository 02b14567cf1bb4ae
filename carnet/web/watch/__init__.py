"""The security officer's pages: the abnormal-access alert queue (carnet/watch)."""

"""The one error of the research hub, mapped to an HTTP status by its routers and pages."""

from __future__ import annotations


class HubError(Exception):
    """A refused hub action: ``status`` 400 (bad input), 403 (not allowed), 404, 409 (state)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

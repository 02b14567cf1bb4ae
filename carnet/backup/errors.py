"""What a backup or a restore reports when it cannot go on."""

from __future__ import annotations


class RestoreError(RuntimeError):
    """The destination is not empty, or the snapshot is not there or not of its kind."""


class TargetError(RuntimeError):
    """A backup target that cannot be used: badly named, unreachable, or refusing (no secret in
    the message)."""

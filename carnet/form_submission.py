"""A form's submission id, against double sends (a double click, a replayed POST, an answer
lost): the form carries a fresh random id, and what it creates takes an id derived from it and
from its sender, so the same form sent again finds what the first send stored. The sender is in
the derivation: a submission id replayed by someone else makes their own record, never reaches
the first sender's."""

from __future__ import annotations

import re
import uuid

SUBMISSION_ID = re.compile(r"[0-9a-f]{32}")
_NAMESPACE = uuid.UUID("5b0f3c2e-8d7a-4e44-9c1b-6a3e2f1d0c47")  # kept: ids already derived stay


def new_submission() -> str:
    """A fresh id for a form (it travels in the hidden field ``envoi``)."""
    return uuid.uuid4().hex


def record_id(submission: str | None, *scope: str) -> str:
    """The id of the record a form creates: derived from a well-formed ``submission`` and its
    ``scope`` (the sender, the project), else a fresh random one."""
    if submission is None or not SUBMISSION_ID.fullmatch(submission):
        return str(uuid.uuid4())
    return str(uuid.uuid5(_NAMESPACE, "\n".join((*scope, submission))))

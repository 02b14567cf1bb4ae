"""Notifications about a personal space, and the channels that deliver them.

A notification is an outbox row: ids and a template code only. The channel that delivers it (post,
SMS, e-mail, the national messaging service) looks the address up on its side from the recipient's
id and fills the template; Carnet never puts a name or clinical content in a notification. The only
channel built in writes NDJSON lines to a local file (no network), for the operator's mail merge,
the demo and the tests.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from carnet.private_files import private_dir

# Template codes: what happened to the space (the channel holds the texts).
PROVISIONED = "space-provisioned"  # created; objection window open until the deadline
OPENED = "space-opened"
REFUSED = "space-refused"  # objection inside the window
CLOSED = "space-closed"
REPRESENTATIVE = "representative-added"  # someone now acts for the person
ACTIVATION_CODE = "activation-code"  # the code that activates the space (in ``secret``)
PASSWORD_RESET = "password-reset"  # noqa: S105 - a template code: a new password's one-time code


@dataclass(frozen=True)
class Notification:
    """One message to send: about ``patient_id``'s space, to ``recipient_patient_id``."""

    id: str
    patient_id: str
    recipient_patient_id: str
    kind: str
    created_at: str
    deadline: str | None = None  # the objection deadline, for space-provisioned
    secret: str | None = None  # the one-time code of activation-code and password-reset


class NotificationChannel(Protocol):
    """Delivers notifications; ``send`` raises to leave a notification in the outbox."""

    name: str

    def send(self, notification: Notification) -> None: ...


class FileChannel:
    """Appends one JSON line per notification to a local file (mode 0600)."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, notification: Notification) -> None:
        """Append the notification's ids, template code and dates (and its one-time code, for
        activation-code and password-reset) as one JSON line."""
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            fields = asdict(notification)
            if fields["secret"] is None:  # only one-time-code notifications carry one
                del fields["secret"]
            handle.write(json.dumps(fields, sort_keys=True) + "\n")


# Alerts (carnet/record/alerts.py): about an access to the record, never what was read.
ALERT_FIRST_ACCESS = "alert-first-access"  # a professional opened the record for the first time
ALERT_EMERGENCY = "alert-emergency-access"  # break-glass: always sent (EHDS art. 9)
ALERT_NEW_DOCUMENT = "alert-new-document"  # someone else deposited a document
# an access to the record the security officer confirmed as abnormal (carnet/watch/service.py)
ALERT_ABNORMAL_ACCESS = "alert-abnormal-access"

"""Signed checkpoints: the C2SP note format round-trips and any edit breaks it."""

from __future__ import annotations

import pytest

from carnet.audit import checkpoints
from carnet.crypto.signing import Ed25519Signer

ROOT = bytes(range(32))


def test_sign_and_open() -> None:
    signer = Ed25519Signer(b"\x01" * 32)
    cp = checkpoints.sign(signer, 42, ROOT, "2025-01-02T03:04:05.000000Z")
    lines = cp.note.split("\n")
    assert lines[0] == checkpoints.origin_for(signer.public_key_bytes())
    assert lines[1:4] == ["42", cp.root_b64, "time 2025-01-02T03:04:05.000000Z"]
    assert lines[4] == "" and lines[5].startswith("\u2014 " + lines[0] + " ")
    opened = checkpoints.open_note(cp.note, signer.public_key_bytes())
    assert (opened.size, opened.root, opened.time) == (42, ROOT, cp.time)


@pytest.mark.parametrize(
    "edit",
    [
        lambda n: n.replace("\n42\n", "\n43\n"),
        lambda n: n.replace("time 2025", "time 2024"),
        lambda n: n[:-10] + ("A" if n[-10] != "A" else "B") + n[-9:],
        lambda n: n.split("\n\n")[0] + "\n",
    ],
    ids=["size", "time", "signature", "unsigned"],
)
def test_any_edit_is_refused(edit) -> None:  # type: ignore[no-untyped-def]
    signer = Ed25519Signer(b"\x01" * 32)
    cp = checkpoints.sign(signer, 42, ROOT, "2025-01-02T03:04:05.000000Z")
    with pytest.raises(checkpoints.NoteError):
        checkpoints.open_note(edit(cp.note), signer.public_key_bytes())


def test_another_key_is_refused() -> None:
    cp = checkpoints.sign(Ed25519Signer(b"\x01" * 32), 1, ROOT, "t")
    with pytest.raises(checkpoints.NoteError):
        checkpoints.open_note(cp.note, Ed25519Signer(b"\x02" * 32).public_key_bytes())

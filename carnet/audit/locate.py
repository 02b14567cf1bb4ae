"""Naming the first edited event when a rebuilt tree no longer matches a signed checkpoint.

An event edited together with its stored leaf hash is consistent with itself; only the signed
root betrays it. The stored perfect nodes (``audit_node``, leaves included) were written when the
events were sequenced: starting from the signed root, each stored node is trusted only once its
parent is (its children's hash equals it), and the walk goes down into the left-most child whose
hash rebuilt from the events differs. It ends at the edited leaf, or, when the stored nodes were
rewritten too (or predate leaf nodes), at the smallest subtree they still authenticate.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256

from sqlalchemy import Connection, select, tuple_

from carnet.audit import merkle
from carnet.audit.checkpoints import Checkpoint
from carnet.audit.events import leaf_data
from carnet.audit.models import audit_event, audit_node


@dataclass(frozen=True)
class Located:
    first: int  # index of the first leaf of the smallest subtree known to hold an edit
    count: int  # leaves in that subtree: 1 names the edited event itself

    @property
    def exact(self) -> bool:
        return self.count == 1


def locate_edit(
    conn: Connection, checkpoint: Checkpoint, rebuilt_frontier: list[bytes]
) -> Located | None:
    """Where the events rebuilt into ``rebuilt_frontier`` first depart from ``checkpoint``;
    None when the stored nodes cannot be authenticated against its root at all."""
    frontier = merkle.Frontier.nodes_for(checkpoint.size)
    stored = _stored_nodes(conn, frontier)
    if len(stored) != len(frontier):
        return None
    signed = [stored[n] for n in frontier]
    if merkle.Frontier(checkpoint.size, signed).root() != checkpoint.root:
        return None
    for node, trusted, rebuilt in zip(frontier, signed, rebuilt_frontier, strict=True):
        if trusted != rebuilt:
            return _descend(conn, node, trusted)
    return None


def _descend(conn: Connection, node: merkle.Node, trusted: bytes) -> Located:
    level, index = node
    lo = index << level
    rebuilt = _rebuilt_levels(conn, lo, lo + (1 << level))
    while level > 0:
        left, right = (level - 1, 2 * index), (level - 1, 2 * index + 1)
        children = _stored_nodes(conn, [left, right])
        if len(children) != 2 or merkle.node_hash(children[left], children[right]) != trusted:
            return Located(index << level, 1 << level)
        level -= 1
        offset = (2 * index) - (lo >> level)  # left child's position among this level's nodes
        if rebuilt[level][offset] != children[left]:
            index, trusted = 2 * index, children[left]
        else:
            index, trusted = 2 * index + 1, children[right]
    return Located(index, 1)


def _rebuilt_levels(conn: Connection, lo: int, hi: int) -> list[list[bytes]]:
    """Every perfect node hash of leaves [lo, hi) (a perfect subtree) rebuilt from the events."""
    leaves = [
        sha256(b"\x00" + leaf_data(int(idx), bytes(body))).digest()
        for idx, body in conn.execute(
            select(audit_event.c.leaf_index, audit_event.c.body)
            .where(audit_event.c.leaf_index >= lo, audit_event.c.leaf_index < hi)
            .order_by(audit_event.c.leaf_index)
        )
    ]
    levels = [leaves]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([merkle.node_hash(below[i], below[i + 1]) for i in range(0, len(below), 2)])
    return levels


def _stored_nodes(conn: Connection, nodes: list[merkle.Node]) -> dict[merkle.Node, bytes]:
    """Nodes as the sequencer stored them in ``audit_node``; a leaf missing there (a log
    sequenced before leaves were stored) is read from its event. Either is trusted only once its
    parent or the signed root vouches for it."""
    found = conn.execute(
        select(audit_node.c.level, audit_node.c.idx, audit_node.c.hash).where(
            tuple_(audit_node.c.level, audit_node.c.idx).in_(nodes)
        )
    )
    out = {(int(level), int(idx)): bytes(h) for level, idx, h in found}
    leaves = [idx for level, idx in nodes if level == 0 and (0, idx) not in out]
    if leaves:
        for idx, h in conn.execute(
            select(audit_event.c.leaf_index, audit_event.c.leaf_hash).where(
                audit_event.c.leaf_index.in_(leaves), audit_event.c.leaf_hash.is_not(None)
            )
        ):
            out[(0, int(idx))] = bytes(h)
    return out

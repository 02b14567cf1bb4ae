"""Merkle tree hashing, proofs and their verification, exactly as RFC 9162 section 2.1.

Pure functions over hashes; no database. Leaves hash as SHA-256(0x00 || data), interior nodes as
SHA-256(0x01 || left || right), and a tree of n leaves splits at k, the largest power of two smaller
than n. A "perfect node" ``(level, index)`` is the root of the complete subtree covering leaves
``[index * 2**level, (index + 1) * 2**level)``; the store keeps every one of them once it is
complete, so any proof costs one lookup per hash in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from hashlib import sha256

Node = tuple[int, int]  # (level, index) of a perfect subtree
Range = tuple[int, int]  # leaves [lo, hi)

EMPTY_ROOT = sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """k: the largest power of two strictly smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of raw leaf data, straight from the RFC's recursive definition (reference)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = split(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


# -- the right edge of a growing tree -------------------------------------------------------------


class Frontier:
    """The compact range [0, size): one perfect subtree per set bit of size, largest first.

    Appending a leaf merges equal-sized subtrees (O(log n), amortised O(1)) and reports every
    perfect node it completes, so the caller can store them for later proofs.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        levels = [lvl for lvl in reversed(range(size.bit_length())) if size >> lvl & 1]
        if len(levels) != len(hashes):
            raise ValueError(f"a tree of {size} leaves has {len(levels)} frontier nodes")
        self.size = size
        self.levels = levels
        self.hashes = list(hashes)

    @staticmethod
    def nodes_for(size: int) -> list[Node]:
        """The perfect nodes forming the frontier of a tree of ``size`` leaves, largest first."""
        out: list[Node] = []
        offset = 0
        for lvl in reversed(range(size.bit_length())):
            if size >> lvl & 1:
                out.append((lvl, offset >> lvl))
                offset += 1 << lvl
        return out

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; returns the completed perfect nodes (level >= 1, index, hash)."""
        completed: list[tuple[int, int, bytes]] = []
        h = leaf
        lvl = 0
        idx = self.size
        levels, hashes = self.levels, self.hashes
        while levels and levels[-1] == lvl:
            levels.pop()
            h = node_hash(hashes.pop(), h)
            lvl += 1
            idx >>= 1
            completed.append((lvl, idx, h))
        levels.append(lvl)
        hashes.append(h)
        self.size += 1
        return completed

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        r = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            r = node_hash(h, r)
        return r


# -- proofs as ranges of leaves, then as hashes -----------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1, as the leaf ranges whose MTH form the proof, in order."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    out: list[Range] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = split(hi - lo)
        if m < k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m = lo + k, m - k
    out.reverse()  # the recursion appends the top-level sibling last
    return out


def consistency_ranges(first: int, second: int) -> list[Range]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1 as leaf ranges, in order (empty when m is 0 or n)."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    if first in (0, second):
        return []
    out: list[Range] = []
    lo, hi, m, whole = 0, second, first, True
    while m != hi - lo:
        k = split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        out.append((lo, hi))
    out.reverse()
    return out


def range_nodes(lo: int, hi: int) -> list[Node]:
    """Perfect nodes whose right fold is MTH(D[lo:hi]); ``lo`` is aligned as in every proof range."""
    out: list[Node] = []
    while lo < hi:
        lvl = (hi - lo).bit_length() - 1
        if lo & ((1 << lvl) - 1):
            raise ValueError(f"range [{lo}, {hi}) is not aligned")
        out.append((lvl, lo >> lvl))
        lo += 1 << lvl
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    r = hashes[-1]
    for h in reversed(hashes[:-1]):
        r = node_hash(h, r)
    return r


def needed_nodes(ranges: Iterable[Range]) -> set[Node]:
    return {n for lo, hi in ranges for n in range_nodes(lo, hi)}


def resolve(ranges: Sequence[Range], nodes: Mapping[Node, bytes]) -> list[bytes]:
    """The proof hashes for ``ranges`` given the perfect nodes they need."""
    return [fold([nodes[n] for n in range_nodes(lo, hi)]) for lo, hi in ranges]


# -- verification (what an independent client runs) -------------------------------------------


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes | None:
    """RFC 9162 2.1.3.2: the root the proof leads to, or None if the proof has the wrong shape."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    return root_from_inclusion(leaf, index, size, proof) == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2 (plus the trivial cases: an empty first tree, equal sizes)."""
    if first > second:
        return False
    if first == 0:
        return not proof
    if first == second:
        return not proof and first_root == second_root
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first tree is a node of the second
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root

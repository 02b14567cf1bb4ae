"""RFC 9162 hashing and proofs: published vectors, and Hypothesis against a naive recursive model."""

from __future__ import annotations

from hashlib import sha256

from hypothesis import given, settings
from hypothesis import strategies as st

from carnet.audit import merkle

# The RFC 6962 test leaves used by certificate-transparency and Trillian, with their tree roots.
LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _naive_path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) written exactly as RFC 9162 2.1.3.1 states it."""
    if len(d) == 1:
        return []
    k = merkle.split(len(d))
    if m < k:
        return [*_naive_path(m, d[:k]), merkle.mth(d[k:])]
    return [*_naive_path(m - k, d[k:]), merkle.mth(d[:k])]


def _naive_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 2.1.4.1."""
    if m == len(d):
        return [] if b else [merkle.mth(d)]
    k = merkle.split(len(d))
    if m <= k:
        return [*_naive_subproof(m, d[:k], b), merkle.mth(d[k:])]
    return [*_naive_subproof(m - k, d[k:], False), merkle.mth(d[:k])]


def _all_nodes(d: list[bytes]) -> dict[merkle.Node, bytes]:
    nodes: dict[merkle.Node, bytes] = {}
    level = 0
    while (1 << level) <= len(d):
        width = 1 << level
        for i in range(len(d) // width):
            nodes[(level, i)] = merkle.mth(d[i * width : (i + 1) * width])
        level += 1
    return nodes


def test_rfc6962_vectors() -> None:
    assert merkle.mth([]).hex() == sha256(b"").hexdigest()
    for n, expected in enumerate(ROOTS, start=1):
        assert merkle.mth(LEAVES[:n]).hex() == expected
        frontier = merkle.Frontier()
        for leaf in LEAVES[:n]:
            frontier.append(merkle.leaf_hash(leaf))
        assert frontier.root().hex() == expected


def test_rfc6962_proofs_verify() -> None:
    nodes = _all_nodes(LEAVES)
    roots = [bytes.fromhex(r) for r in ROOTS]
    for n in range(1, 9):
        for m in range(n):
            proof = merkle.resolve(merkle.inclusion_ranges(m, n), nodes)
            assert merkle.verify_inclusion(merkle.leaf_hash(LEAVES[m]), m, n, proof, roots[n - 1])
        for m in range(1, n + 1):
            proof = merkle.resolve(merkle.consistency_ranges(m, n), nodes)
            assert merkle.verify_consistency(m, n, roots[m - 1], roots[n - 1], proof)


leaves_st = st.lists(st.binary(max_size=8), min_size=1, max_size=140)


@settings(max_examples=60, deadline=None)
@given(leaves_st, st.data())
def test_proofs_match_the_rfc_definition(leaves: list[bytes], data: st.DataObject) -> None:
    n = len(leaves)
    nodes = _all_nodes(leaves)
    root = merkle.mth(leaves)
    frontier = merkle.Frontier()
    completed: dict[merkle.Node, bytes] = {}
    for leaf in leaves:
        for level, idx, h in frontier.append(merkle.leaf_hash(leaf)):
            completed[(level, idx)] = h
    assert frontier.root() == root
    assert completed == {k: v for k, v in nodes.items() if k[0] > 0}
    rebuilt = merkle.Frontier(n, [nodes[k] for k in merkle.Frontier.nodes_for(n)])
    assert rebuilt.root() == root

    m = data.draw(st.integers(0, n - 1))
    proof = merkle.resolve(merkle.inclusion_ranges(m, n), nodes)
    assert proof == _naive_path(m, leaves)
    leaf = merkle.leaf_hash(leaves[m])
    assert merkle.verify_inclusion(leaf, m, n, proof, root)
    assert not merkle.verify_inclusion(merkle.leaf_hash(leaves[m] + b"x"), m, n, proof, root)
    if proof:
        assert not merkle.verify_inclusion(leaf, m, n, proof[:-1], root)
        bent = [*proof[:-1], sha256(proof[-1]).digest()]
        assert not merkle.verify_inclusion(leaf, m, n, bent, root)
    if n > 1:
        other = (m + 1) % n
        assert not merkle.verify_inclusion(leaf, other, n, proof, root) or (
            leaves[other] == leaves[m]
        )

    first = data.draw(st.integers(1, n))
    cproof = merkle.resolve(merkle.consistency_ranges(first, n), nodes)
    assert cproof == _naive_subproof(first, leaves, True)
    old_root = merkle.mth(leaves[:first])
    assert merkle.verify_consistency(first, n, old_root, root, cproof)
    if first < n:
        forged = sha256(old_root).digest()
        assert not merkle.verify_consistency(first, n, forged, root, cproof)
        assert not merkle.verify_consistency(first, n, old_root, forged, cproof)

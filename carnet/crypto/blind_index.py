"""Blind indexes: keyed hashes of normalised identifying values, as CipherSweet does.

Search needs equality and prefix matching on names, identifiers, telecom and addresses, but the
database must not hold them in clear. We store BLAKE2b keyed with a 256-bit key (a MAC, one C call,
several times faster than HMAC-SHA256 here) over kind + value, 128-bit digests; without the key, an
attacker holding the database sees only which rows share a value.
"""

from __future__ import annotations

import hashlib
import unicodedata
from functools import lru_cache

PREFIX_MAX = 24  # longer prefixes add rows without making searches more selective
GRAM = 3  # :contains matches values holding every trigram of the searched text


def normalise(value: str) -> str:
    """Case- and accent-insensitive form used by FHIR string search."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


class BlindIndexer:
    """Computes blind-index hashes with one deployment-wide key derived from the master key."""

    def __init__(self, key: bytes) -> None:
        # Keying BLAKE2b compresses one block of key; copying a keyed state skips it (2.5x faster
        # per digest, and indexing takes tens of digests per name or address).
        self._keyed = hashlib.blake2b(key=key, digest_size=16)
        # Codes' displays, cities and given names repeat across resources: hash each value once.
        self.prefix_hashes = lru_cache(maxsize=65536)(self._prefix_hashes)  # type: ignore[method-assign]
        self.gram_hashes = lru_cache(maxsize=65536)(self._gram_hashes)  # type: ignore[method-assign]
        self.string_terms = lru_cache(maxsize=65536)(self._string_terms)  # type: ignore[method-assign]

    def digest(self, kind: str, value: str) -> str:
        state = self._keyed.copy()
        state.update(f"{kind}\x1f{value}".encode())
        return state.hexdigest()

    def prefix_hashes(self, value: str) -> frozenset[str]:
        """Hashes of every prefix of the normalised value (for ``starts-with`` search)."""
        return self._prefix_hashes(value)

    def _prefix_hashes(self, value: str) -> frozenset[str]:
        norm = normalise(value)
        return frozenset(
            self.digest("p", norm[:n]) for n in range(1, min(len(norm), PREFIX_MAX) + 1)
        )

    def prefix_query(self, value: str) -> str:
        norm = normalise(value)[:PREFIX_MAX]
        return self.digest("p", norm)

    def gram_hashes(self, value: str) -> frozenset[str]:
        """Hashes of the normalised value's trigrams (for ``:contains``)."""
        return self._gram_hashes(value)

    def _gram_hashes(self, value: str) -> frozenset[str]:
        norm = normalise(value)
        return frozenset(self.digest("g", norm[i : i + GRAM]) for i in range(len(norm) - GRAM + 1))

    def string_terms(self, value: str) -> tuple[frozenset[str], frozenset[str]]:
        """What the index stores for one string value: its prefix hashes with its exact hash, and
        its trigram hashes (``prefix_hashes | {exact_hash}``, ``gram_hashes``; one normalisation)."""
        return self._string_terms(value)

    def _string_terms(self, value: str) -> tuple[frozenset[str], frozenset[str]]:
        norm = normalise(value)
        digest = self.digest
        terms = {digest("p", norm[:n]) for n in range(1, min(len(norm), PREFIX_MAX) + 1)}
        terms.add(digest("x", value))
        grams = frozenset(digest("g", norm[i : i + GRAM]) for i in range(len(norm) - GRAM + 1))
        return frozenset(terms), grams

    def exact_hash(self, value: str) -> str:
        return self.digest("x", value)

    def token_hash(self, value: str) -> str:
        return self.digest("t", value)

"""Blind indexes: keyed hashes of normalised identifying values, as CipherSweet does.

Search needs equality and prefix matching on names, identifiers, telecom and addresses, but the
database must not hold them in clear. We store HMAC-SHA256(key, kind + value) truncated to 128 bits;
without the key, an attacker holding the database sees only which rows share a value.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

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
        self._key = key

    def digest(self, kind: str, value: str) -> str:
        mac = hmac.new(self._key, f"{kind}\x1f{value}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def prefix_hashes(self, value: str) -> set[str]:
        """Hashes of every prefix of the normalised value (for ``starts-with`` search)."""
        norm = normalise(value)
        return {self.digest("p", norm[:n]) for n in range(1, min(len(norm), PREFIX_MAX) + 1)}

    def prefix_query(self, value: str) -> str:
        norm = normalise(value)[:PREFIX_MAX]
        return self.digest("p", norm)

    def gram_hashes(self, value: str) -> set[str]:
        """Hashes of the normalised value's trigrams (for ``:contains``)."""
        norm = normalise(value)
        return {self.digest("g", norm[i : i + GRAM]) for i in range(len(norm) - GRAM + 1)}

    def exact_hash(self, value: str) -> str:
        return self.digest("x", value)

    def token_hash(self, value: str) -> str:
        return self.digest("t", value)

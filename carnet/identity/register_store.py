"""The reference identity register kept in the database: the INSi stand-in the demo loads.

:class:`DatabaseRegister` implements :class:`~carnet.identity.register.IdentityRegister` over the
``identity_register`` table, so every process over the same database (``carnet demo``, then the
server) sees the same register. Nothing is in clear: each entry (matricule and reference traits) is
an AES-GCM blob under the "identity" data key; the database compares blind hashes of the matricule
and of the search key (birth name, first first-name, birth date, sex).

The register is used only once it holds identities (:func:`open_register`): with an empty one there
is nothing to verify a qualified INS against. A client of the real INSi teleservice implements the
same protocol and replaces it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, delete, func, insert, select

from carnet.crypto.blind_index import BlindIndexer
from carnet.crypto.envelope import DataKeys
from carnet.db.engine import reading, writing
from carnet.identity.ins import Ins, Traits
from carnet.identity.models import identity_register
from carnet.identity.register import (
    RegisterAnswer,
    RegisterOutcome,
    RegisterRecord,
)
from carnet.identity.vigilance import OWNER

if TYPE_CHECKING:
    pass

__all__ = ["DatabaseRegister", "open_register"]


class DatabaseRegister:
    """The reference register in the ``identity_register`` table."""

    def __init__(self, engine: Engine, data_keys: DataKeys, blind: BlindIndexer) -> None:
        self.engine = engine
        self.data_keys = data_keys
        self.blind = blind

    def _ins_hash(self, ins: Ins) -> str:
        return self.blind.digest("register-ins", f"{ins.system}|{ins.value}")

    def _key_hash(self, traits: Traits) -> str:
        key = (
            traits.birth_name,
            traits.first_given_name,
            traits.birth_date.isoformat(),
            traits.sex,
        )
        return self.blind.digest("register-key", "|".join(key))

    def _decode(self, conn: Connection, ins_hash: str, blob: bytes) -> RegisterRecord:
        data = json.loads(self.data_keys.decrypt(conn, OWNER, blob, ins_hash.encode()))
        traits = Traits(
            data["n"], tuple(data["g"]), date.fromisoformat(data["d"]), data["s"], data["p"]
        )
        replaced = data.get("r")
        successor = None if not replaced else Ins(replaced[0], replaced[1])
        return RegisterRecord(Ins(data["i"][0], data["i"][1]), traits, successor)

    def load(self, records: Iterable[RegisterRecord], *, batch: int = 2000) -> int:
        """Add or replace identities (by matricule); returns how many were written."""
        pending = list(records)
        for start in range(0, len(pending), batch):
            with writing(self.engine) as conn:
                rows = []
                for record in pending[start : start + batch]:
                    ins_hash = self._ins_hash(record.ins)
                    t = record.traits
                    payload = {
                        "i": [record.ins.system, record.ins.value],
                        "n": t.birth_name,
                        "g": list(t.given_names),
                        "d": t.birth_date.isoformat(),
                        "s": t.sex,
                        "p": t.birth_place,
                        "r": None
                        if record.replaced_by is None
                        else [record.replaced_by.system, record.replaced_by.value],
                    }
                    blob = json.dumps(payload).encode()
                    rows.append(
                        {
                            "ins_hash": ins_hash,
                            "key_hash": self._key_hash(t),
                            "record": self.data_keys.encrypt(conn, OWNER, blob, ins_hash.encode()),
                        }
                    )
                hashes = [r["ins_hash"] for r in rows]
                conn.execute(
                    delete(identity_register).where(identity_register.c.ins_hash.in_(hashes))
                )
                conn.execute(insert(identity_register), rows)
        return len(pending)

    def count(self) -> int:
        """How many identities the register holds."""
        with reading(self.engine) as conn:
            found = conn.execute(select(func.count()).select_from(identity_register))
            return int(found.scalar_one())

    def search(self, traits: Traits) -> RegisterAnswer:
        """INSi search by traits: one, none or several identities (birth place only when given)."""
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(identity_register).where(
                    identity_register.c.key_hash == self._key_hash(traits)
                )
            ).all()
            records = [self._decode(conn, r.ins_hash, r.record) for r in rows]
        found = [
            r
            for r in records
            if traits.birth_place is None or r.traits.birth_place == traits.birth_place
        ]
        if not found:
            return RegisterAnswer(RegisterOutcome.NONE)
        if len(found) > 1:
            return RegisterAnswer(RegisterOutcome.SEVERAL, count=len(found))
        return RegisterAnswer(RegisterOutcome.ONE, found[0], 1)

    def verify(self, ins: Ins, traits: Traits) -> bool:
        """INSi verification: the matricule exists and its traits are these."""
        ins_hash = self._ins_hash(ins)
        with reading(self.engine) as conn:
            row = conn.execute(
                select(identity_register.c.record).where(identity_register.c.ins_hash == ins_hash)
            ).first()
            if row is None:
                return False
            record = self._decode(conn, ins_hash, row.record)
        return record.ins == ins and record.traits == traits

    def successor(self, ins: Ins) -> Ins | None:
        """The NIR that replaced this NIA, if the register says so."""
        ins_hash = self._ins_hash(ins)
        with reading(self.engine) as conn:
            row = conn.execute(
                select(identity_register.c.record).where(identity_register.c.ins_hash == ins_hash)
            ).first()
            if row is None:
                return None
            record = self._decode(conn, ins_hash, row.record)
        return record.replaced_by if record.ins == ins else None


def open_register(
    engine: Engine, data_keys: DataKeys, blind: BlindIndexer
) -> DatabaseRegister | None:
    """The database register if it holds identities, else None (nothing to verify against)."""
    register = DatabaseRegister(engine, data_keys, blind)
    return register if register.count() else None

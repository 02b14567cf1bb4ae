"""Which record an item joins, checked on write: the Patient it names must exist, and an
import never moves an item from one patient's record to another's.

Both guard the first hard rule (nothing is ever attached to the wrong patient). An item stored
for ``Patient/ghost``, a Patient no one has, would join whichever Patient later takes that id
(a PUT by id, another source's file): as HAPI FHIR enforces referential integrity on write, it
is refused (400). Two sources using the same ids (each file's ``Observation/o1`` for its own
patient) would move one patient's item into another's record: an import refuses it (409),
while an identity correction (a merge) moves items by its own updates.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from carnet.fhir.definitions import Definitions
from carnet.fhir.errors import FhirError, Issue
from carnet.fhir.repository import StoredResource, Unit


@dataclass
class RecordMoveError(FhirError):
    """409: an import's update would move an item out of its patient's record (``at``: where
    its body is, ``Observation`` or ``Bundle.entry[3].resource``), so that the importer can set
    that one item aside and store the rest."""

    at: str = ""


def record_element(definitions: Definitions, stored: StoredResource) -> str:
    """The element that places ``stored`` in its patient's record (``subject`` of an
    Observation), from the compartment's search parameters; "" when none names its Patient."""
    res_type, body = stored.res_type, stored.body or {}
    params = definitions.params_for(res_type)
    for code in definitions.compartment.get(res_type, ()):
        param = params.get(code)
        for part in param.expression.split("|") if param else ():
            whole = part.strip(" ()")
            step = whole.removeprefix(f"{res_type}.")
            name = step.split(".")[0].split("(")[0]
            mentions = stored.patient_id is None or f"Patient/{stored.patient_id}" in str(
                body.get(name)
            )
            if step != whole and name in body and mentions:
                return name
    return ""


def moves_record(definitions: Definitions, stored: StoredResource, at: str) -> RecordMoveError:
    """409 for an import line taking an item out of its patient's record (the unit rolls back);
    names the element that places the item (``Observation.subject``), never a patient id."""
    element = record_element(definitions, stored)
    what = f"{stored.res_type}/{stored.res_id} is in another patient's record"
    diagnostics = f"{what}: an import never moves an item from one record to another"
    issue = Issue("conflict", diagnostics, f"{at}.{element}" if element else at)
    return RecordMoveError(409, [issue], at=at)


class ExpectedPatients:
    """The Patients a unit's items were put in the records of, checked when it commits.

    At commit, not at each write: a transaction writes its POSTs before its PUTs, so the
    Patient of a Bundle may come after its items. Only a caller who may write outside the
    records it holds (a system caller) gets here with a Patient that does not exist: the policy
    refused the others first, so a hidden Patient and a missing one answer alike.
    """

    def __init__(self, definitions: Definitions, unit: Unit) -> None:
        self.definitions = definitions
        self.unit = unit
        self.where: dict[str, str] = {}  # patient id -> where an item first named it
        self.refused: set[str] = set()
        """Patient ids an import refused (another person under that id): their items are his."""

    def add(self, stored: StoredResource, previous: StoredResource | None) -> None:
        """Expect the Patient of ``stored`` if it was created in a record or moved to one."""
        pid = stored.patient_id
        if pid is None or stored.res_type == "Patient" or stored.deleted:
            return
        if pid in self.refused:
            raise FhirError.of(
                409,
                "conflict",
                f"{self._where(stored)} names a Patient this import refused (another person "
                "under that id): the item is that person's, not the stored record's",
                self._where(stored),
            )
        if previous is not None and previous.patient_id == pid:
            return
        if not self.where:
            self.unit.before_commit.append(self.check)
        if pid not in self.where:
            self.where[pid] = self._where(stored)

    def _where(self, stored: StoredResource) -> str:
        element = record_element(self.definitions, stored)
        return f"{stored.res_type}.{element}" if element else stored.res_type

    def check(self, _conn: Connection) -> None:
        """400 (nothing stored) if an expected Patient does not exist, or was deleted."""
        unit = self.unit
        unit.prefetch_current([("Patient", pid) for pid in self.where])
        for pid, where in self.where.items():
            found = unit.current("Patient", pid)
            if found is None or found.deleted:
                raise FhirError.of(
                    400,
                    "not-found",
                    f"{where} names a Patient that does not exist here: an item joins an "
                    "existing record (write the Patient first, or in the same transaction)",
                    where,
                )

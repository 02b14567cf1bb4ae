"""The profile forms' fields and how a posted form is read: French dates ("12/03/2025", a month
"03/2025" or a year "2025" where the day may be unknown), decimal comma ("72,5"), bounded
numbers, choices from a list, telephone numbers and addresses.

Pure functions: nothing here reads the store. A form is read whole; every field's error is
reported at once, as a message id (French) with its parameters, translated by the page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from carnet.web.i18n import N_

FieldKind = Literal[
    "text", "textarea", "date", "partial-date", "decimal", "integer", "select", "checkbox",
    "tel", "email",
]  # fmt: skip

REQUIRED = N_("Ce champ est obligatoire.")
BAD_DATE = N_("Saisissez une date valable, par exemple 12/03/2025.")
BAD_PARTIAL_DATE = N_("Saisissez une date (12/03/2025), un mois (03/2025) ou une année (2025).")
FUTURE = N_("La date ne peut pas être dans le futur.")
BAD_NUMBER = N_("Saisissez un nombre, par exemple 72,5.")
BAD_WHOLE = N_("Saisissez un nombre entier, par exemple 45.")
OUT_OF_RANGE = N_("Saisissez une valeur entre %(low)s et %(high)s.")
BAD_CHOICE = N_("Choisissez une valeur dans la liste.")
TOO_LONG = N_("Ce texte est trop long : %(max)d caractères au plus.")
BAD_PHONE = N_("Saisissez un numéro de téléphone, par exemple 06 12 34 56 78.")
BAD_EMAIL = N_("Saisissez une adresse électronique, par exemple nom@exemple.fr.")

_DECIMAL = re.compile(r"^[+-]?\d{1,6}(?:[.,]\d{1,4})?$")
_WHOLE = re.compile(r"^\d{1,4}$")
_PHONE = re.compile(r"^\+?[\d .\-()]{6,25}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s.]{2,}$")
_FRENCH_DAY = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})$")
_FRENCH_MONTH = re.compile(r"^(\d{1,2})[/.\-](\d{4})$")
_ISO_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")


@dataclass(frozen=True)
class Message:
    """An error: a message id (the French text) and its parameters."""

    text: str
    params: Mapping[str, Any] | None = None


class InvalidValueError(ValueError):
    def __init__(self, message: Message) -> None:
        super().__init__(message.text)
        self.message = message


def _invalid(text: str, **params: Any) -> InvalidValueError:
    return InvalidValueError(Message(text, params or None))


@dataclass(frozen=True)
class Field:
    """One field of a profile form: its name (``f-<name>`` in the page), label and hint (French
    message ids), kind, whether it is required, its choices or bounds."""

    name: str
    label: str
    kind: FieldKind = "text"
    required: bool = False
    hint: str = ""
    options: tuple[tuple[str, str], ...] = ()  # (value, label): a select's choices
    low: float | None = None
    high: float | None = None
    max_length: int = 200


def parse_decimal(text: str) -> float:
    """A number written the French way ("72,5") or with a point ("72.5"); no thousands."""
    cleaned = text.strip().replace("\u00a0", "").replace(" ", "")
    if not _DECIMAL.match(cleaned):
        raise _invalid(BAD_NUMBER)
    return float(cleaned.replace(",", "."))


def _checked_day(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise _invalid(BAD_DATE) from None


def parse_day(text: str, *, today: date, partial: bool = False) -> str:
    """A FHIR date from what a person writes: ``2025-03-12`` (a date input), ``12/03/2025``;
    with ``partial``, also a month (``03/2025``, ``2025-03``) or a year (``2025``). Never in
    the future, never before 1900."""
    text = text.strip()
    bad = BAD_PARTIAL_DATE if partial else BAD_DATE
    found: str
    if m := _FRENCH_DAY.match(text):
        found = _checked_day(int(m[3]), int(m[2]), int(m[1])).isoformat()
    elif re.match(r"^\d{4}-\d{2}-\d{2}$", text):
        try:
            found = date.fromisoformat(text).isoformat()
        except ValueError:
            raise _invalid(bad) from None
    elif partial and (m := _FRENCH_MONTH.match(text) or _ISO_MONTH.match(text)):
        year, month = (
            (int(m[2]), int(m[1])) if "/" in text or "." in text else (int(m[1]), int(m[2]))
        )
        if not 1 <= month <= 12:
            raise _invalid(bad)
        found = f"{year:04d}-{month:02d}"
    elif partial and (m := _YEAR.match(text)):
        found = m[1]
    else:
        raise _invalid(bad)
    if int(found[:4]) < 1900:
        raise _invalid(bad)
    if found > today.isoformat()[: len(found)]:
        raise _invalid(FUTURE)
    return found


def parse_field(field: Field, raw: str, *, today: date) -> Any:
    """The value of one field (None when empty and optional); raises InvalidValueError."""
    if field.kind == "checkbox":
        return raw == "1"
    if not raw:
        if field.required:
            raise _invalid(REQUIRED)
        return None
    if len(raw) > field.max_length:
        raise _invalid(TOO_LONG, max=field.max_length)
    value: Any = raw
    if field.kind in ("date", "partial-date"):
        return parse_day(raw, today=today, partial=field.kind == "partial-date")
    if field.kind == "select":
        if raw not in {v for v, _ in field.options}:
            raise _invalid(BAD_CHOICE)
        return raw
    if field.kind == "tel":
        if not _PHONE.match(raw) or sum(c.isdigit() for c in raw) < 6:
            raise _invalid(BAD_PHONE)
        return raw
    if field.kind == "email":
        if not _EMAIL.match(raw):
            raise _invalid(BAD_EMAIL)
        return raw
    if field.kind == "integer":
        if not _WHOLE.match(raw.strip()):
            raise _invalid(BAD_WHOLE)
        value = int(raw.strip())
    elif field.kind == "decimal":
        value = parse_decimal(raw)
    if isinstance(value, int | float) and (
        (field.low is not None and value < field.low)
        or (field.high is not None and value > field.high)
    ):
        raise _invalid(OUT_OF_RANGE, low=field.low, high=field.high)
    return value


def read_form(
    fields: tuple[Field, ...], form: Mapping[str, Any], *, today: date
) -> tuple[dict[str, str], dict[str, Any], dict[str, Message]]:
    """(the values as typed, for showing the form again; the parsed values; the errors by
    field). Text is trimmed and control characters other than line breaks are dropped."""
    raw: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    errors: dict[str, Message] = {}
    for field in fields:
        value = form.get(field.name)
        text = value if isinstance(value, str) else ""
        text = "".join(c for c in text if c in "\n\t" or c.isprintable()).strip()
        if field.kind != "textarea":
            text = " ".join(text.split())
        raw[field.name] = text[: field.max_length + 1]
        try:
            parsed[field.name] = parse_field(field, raw[field.name], today=today)
        except InvalidValueError as exc:
            errors[field.name] = exc.message
    return raw, parsed, errors


def french_input(value: str) -> str:
    """A FHIR date as a person writes it in a text field: 12/03/2015, 03/2015 or 2015."""
    parts = value[:10].split("-")
    if len(parts) == 3:
        return f"{parts[2]}/{parts[1]}/{parts[0]}"
    if len(parts) == 2:
        return f"{parts[1]}/{parts[0]}"
    return value

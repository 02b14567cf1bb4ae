"""The measurements a patient can follow over time, and how their points are read from
Observations (blood pressure from the panel's two components)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from carnet.web.i18n import N_
from carnet.web.record.chart import Point, Series
from carnet.web.record.clinical import code_of, when

LOINC = "http://loinc.org"


@dataclass(frozen=True)
class Measure:
    slug: str
    title: str  # French, the message id
    codes: tuple[str, ...]  # LOINC codes searched
    components: tuple[tuple[str, str], ...] = ()  # (component code, series name) of a panel
    band: tuple[float, float] | None = None  # the usual range when results carry none

    @property
    def search_codes(self) -> str:
        return ",".join(f"{LOINC}|{code}" for code in self.codes)


MEASURES: dict[str, Measure] = {
    m.slug: m
    for m in (
        Measure("poids", N_("Poids"), ("29463-7",)),
        Measure(
            "tension",
            N_("Pression artérielle"),
            ("85354-9", "55284-4"),
            components=(("8480-6", N_("Systolique")), ("8462-4", N_("Diastolique"))),
            band=(90, 140),
        ),
        Measure("glycemie", N_("Glycémie"), ("2345-7", "2339-0", "15074-8")),
        Measure("hba1c", N_("Hémoglobine glyquée (HbA1c)"), ("4548-4", "17856-6"), band=(4, 6)),
    )
}


def _day(obs: Mapping[str, Any]) -> date | None:
    text = when(obs)[:10]
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def measure_series(
    measure: Measure, observations: Iterable[Mapping[str, Any]]
) -> tuple[list[Series], tuple[float, float] | None, str]:
    """(series, reference band, unit) of ``measure`` from the caller's Observations."""
    names = measure.components or (("", measure.title),)
    points: dict[str, list[Point]] = {code: [] for code, _ in names}
    band = measure.band
    unit = ""
    for obs in observations:
        day = _day(obs)
        if day is None or obs.get("status") == "entered-in-error":
            continue
        if measure.components:
            for component in obs.get("component", []):
                code = code_of(component.get("code"))
                value = (component.get("valueQuantity") or {}).get("value")
                if code in points and isinstance(value, int | float):
                    points[code].append(Point(day, value))
                    unit = unit or str(component["valueQuantity"].get("unit", ""))
            continue
        quantity = obs.get("valueQuantity") or {}
        if isinstance(quantity.get("value"), int | float):
            points[""].append(Point(day, quantity["value"]))
            unit = unit or str(quantity.get("unit", ""))
            ranges = obs.get("referenceRange") or [{}]
            low, high = (
                (ranges[0].get("low") or {}).get("value"),
                (ranges[0].get("high") or {}).get("value"),
            )
            if isinstance(low, int | float) and isinstance(high, int | float):
                band = (low, high)
    series = [Series(name, sorted(points[code], key=lambda p: p.day)) for code, name in names]
    return [s for s in series if s.points], band, unit

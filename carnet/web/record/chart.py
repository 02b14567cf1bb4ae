"""A measurement over time as an SVG drawn on the server: a title and a description for
assistive technologies, the reference band, the points and their line; the page shows the same
values as a table beside it. No script, no external asset: the CSP needs nothing more."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40


@dataclass(frozen=True)
class Point:
    day: date
    value: float


@dataclass(frozen=True)
class Series:
    name: str  # "Systolique"; one series per line
    points: Sequence[Point]


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    step = (high - low) / (count - 1) if high > low else 1.0
    return [low + i * step for i in range(count)]


def draw(
    series: Sequence[Series],
    *,
    title: str,
    description: str,
    band: tuple[float, float] | None = None,
    number: Callable[[float], str] = str,
    day_label: Callable[[date], str] = str,
) -> Markup:
    """The SVG of ``series`` (role="img", labelled by its title and description)."""
    points = [p for s in series for p in s.points]
    if not points:
        return Markup("")
    values = [p.value for p in points] + (list(band) if band else [])
    low, high = min(values), max(values)
    margin = (high - low) * 0.1 or 1.0
    low, high = low - margin, high + margin
    first, last = min(p.day for p in points), max(p.day for p in points)
    span = (last - first).days or 1

    def x(day: date) -> float:
        return LEFT + (day - first).days / span * (WIDTH - LEFT - RIGHT)

    def y(value: float) -> float:
        return TOP + (high - value) / (high - low) * (HEIGHT - TOP - BOTTOM)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="chart-title chart-desc">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(description)}</desc>',
    ]
    if band:
        top, bottom = y(band[1]), y(band[0])
        parts.append(
            f'<rect class="band" x="{LEFT}" y="{top:.1f}" width="{WIDTH - LEFT - RIGHT}" '
            f'height="{bottom - top:.1f}"/>'
        )
    parts.append(
        f'<line class="axis" x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
        f'y2="{HEIGHT - BOTTOM}"/>'
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}"/>'
    )
    for tick in _ticks(low, high):
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">'
            f"{escape(number(round(tick, 1)))}</text>"
        )
    for day in sorted({first, last}):
        anchor = "start" if day == first else "end"
        parts.append(
            f'<text x="{x(day):.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="{anchor}">'
            f"{escape(day_label(day))}</text>"
        )
    for index, s in enumerate(series):
        ordered = sorted(s.points, key=lambda p: p.day)
        path = " ".join(f"{x(p.day):.1f},{y(p.value):.1f}" for p in ordered)
        parts.append(f'<polyline class="line series-{index}" points="{path}"/>')
        if len(series) > 1:  # a legend: each line's pattern and name, top right
            top = TOP + 4 + index * 16
            parts.append(
                f'<line class="line series-{index}" x1="{WIDTH - 150}" y1="{top}" '
                f'x2="{WIDTH - 126}" y2="{top}"/>'
                f'<text x="{WIDTH - 120}" y="{top + 4}">{escape(s.name)}</text>'
            )
        parts.extend(
            f'<circle class="point" cx="{x(p.day):.1f}" cy="{y(p.value):.1f}" r="3"/>'
            for p in ordered
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built here, every text escaped above

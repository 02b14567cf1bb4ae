"""`carnet screen FILE`: what screening would do with a file, before anyone deposits it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from carnet.cli.shell import fail, say, settings_of
from carnet.screening.service import Screener, ScreeningLimits
from carnet.screening.verdict import Refused


def screen(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The file to screen.")],
    content_type: Annotated[
        str | None, typer.Option("--type", help="The content type it would be declared as.")
    ] = None,
) -> None:
    """Screen a file as a deposit would be: one line, accepted (with its type) or refused (with
    its code and reason; exit 1). Nothing is stored."""
    settings = settings_of(ctx)
    screener = Screener(
        ScreeningLimits(
            max_bytes=settings.max_attachment_bytes,
            max_pdf_pages=settings.screening_max_pdf_pages,
            max_image_pixels=settings.screening_max_image_pixels,
        )
    )
    try:
        with path.open("rb") as handle:
            data = handle.read(settings.max_attachment_bytes + 1)
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}") from None
    try:
        screened = screener.screen(data, content_type)
    except Refused as refused:
        raise fail(f"refused ({refused.code}): {refused.reason}") from None
    changed = " (re-encoded without metadata)" if screened.data != data else ""
    say(f"accepted: {screened.content_type}, {len(screened.data)} bytes{changed}")


def register(app: typer.Typer) -> None:
    """Add `carnet screen`."""
    app.command("screen")(screen)

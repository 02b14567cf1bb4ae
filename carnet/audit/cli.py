"""`carnet audit verify|checkpoint|witness|export`: the tamper-evident audit log, for operators."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from carnet.cli.shell import console, fail, local_operator, open_services, settings_of
from carnet.private_files import open_private

if TYPE_CHECKING:
    from carnet.caller import RequestContext


def _audit_ctx() -> RequestContext:
    from carnet.caller import RequestContext

    return RequestContext.local_operator(actor=local_operator(), source="cli", purpose="audit")


def audit_verify(ctx: typer.Context) -> None:
    """Recompute the Merkle tree from the stored events and check every signed checkpoint."""
    from carnet.audit.verify import verify

    with open_services(settings_of(ctx)) as services:
        report = verify(services.audit)
    if not report.ok:
        where = (
            f"first bad event index {report.first_bad}: " if report.first_bad is not None else ""
        )
        raise fail(f"audit log TAMPERED: {where}{report.problem}")
    console.print(
        f"audit log OK: {report.events} events, {report.checkpoints} checkpoints verified "
        f"({report.pending} pending) in {report.seconds:.1f} s"
    )


def audit_checkpoint(ctx: typer.Context) -> None:
    """Sequence pending events and sign a checkpoint now."""
    with open_services(settings_of(ctx)) as services:
        cp = services.audit.checkpoint()
        latest = cp or services.audit.latest()
    if latest is None:
        raise fail("the audit log is empty; nothing to checkpoint")
    state = "signed" if cp else "no new events; latest"
    console.print(f"{state} checkpoint: size {latest.size}, root {latest.root_b64}")


def audit_witness(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A file (NDJSON) or directory kept elsewhere.")],
) -> None:
    """Append the latest checkpoint to a witness file/directory after checking consistency."""
    from carnet.audit.verify import WitnessError, witness

    with open_services(settings_of(ctx)) as services:
        try:
            result = witness(services.audit, path)
        except WitnessError as exc:
            raise fail(str(exc)) from None
        except (OSError, ValueError, KeyError) as exc:
            raise fail(f"cannot use witness {path}: {type(exc).__name__}: {exc}") from None
    before = f"consistent with {result.previous.size}" if result.previous else "first checkpoint"
    written = "written" if result.written else "already witnessed"
    console.print(f"checkpoint {result.checkpoint.size} {written} ({before})")


def audit_export(
    ctx: typer.Context,
    patient: Annotated[str, typer.Option(help="Patient id whose access history to export.")],
    out: Annotated[
        Path | None, typer.Option(help="Output file (default: standard output).")
    ] = None,
) -> None:
    """Export a patient's access history (NDJSON: checkpoint, then events with proofs)."""
    from carnet.audit.render import export_header, export_line

    with open_services(settings_of(ctx)) as services:
        try:
            checkpoint, events = services.audit.export_patient(patient, _audit_ctx())
            handle = open_private(out) if out else sys.stdout.buffer
            count = 0
            try:
                handle.write(export_header(checkpoint, services.audit.public_key, patient) + b"\n")
                for logged in events:
                    handle.write(export_line(logged) + b"\n")
                    count += 1
            finally:
                if out:
                    handle.close()
        except OSError as exc:
            raise fail(f"cannot write {out}: {exc.strerror}") from None
    if out:
        console.print(f"{count} events exported to {out}")


def register(app: typer.Typer) -> None:
    """Add the `carnet audit` group."""
    audit = typer.Typer(help="Tamper-evident audit log.", no_args_is_help=True)
    audit.command("verify")(audit_verify)
    audit.command("checkpoint")(audit_checkpoint)
    audit.command("witness")(audit_witness)
    audit.command("export")(audit_export)
    app.add_typer(audit, name="audit")

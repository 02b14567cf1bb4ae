"""`carnet identity queue|merge|unmerge|dismiss|train|dedupe`: identity vigilance for the officer.

Output holds ids, comparison levels and weights, never names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from carnet.cli.shell import console, fail, local_operator, open_services, settings_of

if TYPE_CHECKING:
    from carnet.caller import RequestContext


def _as_officer() -> RequestContext:
    """The identity vigilance officer at this machine's CLI: the local operator, by name."""
    from carnet.caller import RequestContext

    return RequestContext.local_operator(actor=local_operator())


def identity_queue(
    ctx: typer.Context,
    state: Annotated[str, typer.Option(help="open, merged, dismissed or unmerged.")] = "open",
) -> None:
    """List vigilance items with their evidence (ids, comparison levels and weights)."""
    with open_services(settings_of(ctx)) as services:
        items = services.identity.vigilance.queue(state)
    for item in items:
        best = item["evidence"]["candidates"][:1]
        levels = ", ".join(
            f"{c['comparison']}={c['level']}" for c in (best[0]["comparisons"] if best else [])
        )
        weight = "-" if item["weight"] is None else f"{item['weight']:.1f}"
        console.print(
            f"{item['id']}  {item['kind']:<12} identity {item['identity']} -> "
            f"{item['candidate'] or '-'}  weight {weight}  held {len(item['quarantined'])}  "
            f"{levels}"
        )
    console.print(f"{len(items)} {state} item(s)")


def identity_merge(
    ctx: typer.Context,
    item: Annotated[str, typer.Argument(help="Vigilance item id (or source identity id).")],
    into: Annotated[
        str | None, typer.Option(help="Target identity id, to merge two identities directly.")
    ] = None,
) -> None:
    """Same person: merge an item's pending identity into its candidate (or SOURCE --into TARGET)."""
    from carnet.identity.service import VigilanceError

    with open_services(settings_of(ctx)) as services:
        try:
            if into:
                done = services.identity.vigilance.merge(
                    item, into, actor=local_operator(), ctx=_as_officer()
                )
            else:
                done = services.identity.vigilance.merge_item(
                    item, actor=local_operator(), ctx=_as_officer()
                )
        except VigilanceError as exc:
            raise fail(str(exc)) from None
    console.print(
        f"merge {done['merge']}: {done['source']} replaced by {done['target']}, "
        f"{done['moved']} resource(s) moved, {done['released']} quarantined document(s) attached"
    )


def identity_unmerge(
    ctx: typer.Context, merge: Annotated[str, typer.Argument(help="Merge id.")]
) -> None:
    """Undo a merge: the source identity is active again and the Patient links are removed."""
    from carnet.identity.service import VigilanceError

    with open_services(settings_of(ctx)) as services:
        try:
            services.identity.vigilance.unmerge(merge, actor=local_operator(), ctx=_as_officer())
        except VigilanceError as exc:
            raise fail(str(exc)) from None
    console.print(f"merge {merge} undone")


def identity_dismiss(
    ctx: typer.Context, item: Annotated[str, typer.Argument(help="Vigilance item id.")]
) -> None:
    """Not the same person: the item's pending identity becomes a distinct identity."""
    from carnet.identity.service import VigilanceError

    with open_services(settings_of(ctx)) as services:
        try:
            released = services.identity.vigilance.dismiss(
                item, actor=local_operator(), ctx=_as_officer()
            )
        except VigilanceError as exc:
            raise fail(str(exc)) from None
    console.print(f"item {item} dismissed, {released} quarantined document(s) attached")


def identity_train(
    ctx: typer.Context,
    random_pairs: Annotated[
        int, typer.Option(help="Random pairs sampled to estimate u.")
    ] = 200_000,
) -> None:
    """Estimate the match weights from the index itself (EM on DuckDB) and use them from now on."""
    with open_services(settings_of(ctx)) as services:
        if services.identity.count() < 2:
            raise fail("the index holds fewer than 2 identities; nothing to train on")
        report = services.identity.batch.train(random_pairs=random_pairs)
    console.print(
        f"trained on {report.records} identities, {report.blocked_pairs} blocked pairs, "
        f"{report.iterations} EM iterations; prior weight {report.model.prior_weight:.1f}"
    )


def identity_dedupe(
    ctx: typer.Context,
    engine: Annotated[str, typer.Option(help="Batch engine: duckdb or spark.")] = "duckdb",
    spark_master: Annotated[
        str, typer.Option(help="Spark master with --engine spark (a cluster URL in production).")
    ] = "local[2]",
) -> None:
    """List suspected duplicate pairs of the whole index with their decision (link or review)."""
    from carnet.identity.engines import ENGINES, EngineUnavailable

    if engine not in ENGINES:
        raise fail(f"engine {engine!r} is not known; choose one of {', '.join(ENGINES)}")
    with open_services(settings_of(ctx)) as services:
        try:
            pairs = services.identity.batch.dedupe(engine=engine, spark_master=spark_master)
        except EngineUnavailable as exc:
            raise fail(str(exc)) from None
    for pair in pairs:
        console.print(f"{pair.outcome:<6} {pair.weight:6.1f}  {pair.a}  {pair.b}")
    links = sum(p.outcome == "link" for p in pairs)
    console.print(
        f"{len(pairs)} suspected pair(s), {links} above the link threshold (engine {engine})"
    )


def register(app: typer.Typer) -> None:
    """Add the `carnet identity` group."""
    identity = typer.Typer(
        help="Master patient index and identity vigilance.", no_args_is_help=True
    )
    identity.command("queue")(identity_queue)
    identity.command("merge")(identity_merge)
    identity.command("unmerge")(identity_unmerge)
    identity.command("dismiss")(identity_dismiss)
    identity.command("train")(identity_train)
    identity.command("dedupe")(identity_dedupe)
    app.add_typer(identity, name="identity")

"""`carnet rules list|set`: the policy decision point's rule table, for operators."""

from __future__ import annotations

from typing import Annotated

import typer

from carnet.cli.shell import console, fail, open_services, settings_of


def list_rules(ctx: typer.Context) -> None:
    """Every rule: id, actor, profession, resource types, action, relationship, effect."""
    from carnet.policy.rules import load_rules

    with open_services(settings_of(ctx)) as services, services.engine.connect() as conn:
        rules = load_rules(conn)
    for r in sorted(rules, key=lambda rule: rule.rule_id):
        types = "*" if r.res_types is None else ",".join(sorted(r.res_types))
        console.print(
            f"{r.rule_id:<24} {r.effect:<5} {r.actor:<14} {r.profession:<15} {r.action:<5} "
            f"{r.relationship:<16} {types}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def set_rule(
    ctx: typer.Context,
    rule_id: Annotated[str, typer.Argument(help="The rule to change.")],
    effect: Annotated[str | None, typer.Option(help="allow or deny")] = None,
    types: Annotated[
        str | None, typer.Option(help="'*' or a comma-separated list of types")
    ] = None,
) -> None:
    """Change a rule's effect or resource types (audited; servers pick it up within seconds)."""
    from carnet.audit.events import Actor, build_event
    from carnet.db.engine import writing
    from carnet.policy.rules import RuleError, edit_rule

    with open_services(settings_of(ctx)) as services:
        try:
            with writing(services.engine) as conn:
                edit_rule(conn, rule_id, effect=effect, res_types=types)
        except RuleError as err:
            raise fail(str(err)) from None
        actor = Actor(actor="operator:cli", source="cli", purpose="administration", rule=rule_id)
        services.audit.append([build_event(actor, "rule-edit", None, 200, [])])
    console.print(f"rule {rule_id} updated", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add the `carnet rules` group."""
    rules = typer.Typer(
        help="The access rule table of the policy decision point.", no_args_is_help=True
    )
    rules.command("list")(list_rules)
    rules.command("set")(set_rule)
    app.add_typer(rules, name="rules")

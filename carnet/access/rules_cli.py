"""`carnet rules list|set`: the policy decision point's rule table, for operators."""

from __future__ import annotations

from typing import Annotated

import typer

rules_app = typer.Typer(
    help="The access rule table of the policy decision point.", no_args_is_help=True
)


@rules_app.command("list")
def list_rules() -> None:
    """Every rule: id, actor, profession, resource types, action, relationship, effect."""
    from carnet.cli import _services, console
    from carnet.policy.rules import load_rules
    from carnet.settings import Settings

    services = _services(Settings.from_env())
    with services.engine.connect() as conn:
        rules = load_rules(conn)
    services.close()
    for r in sorted(rules, key=lambda rule: rule.rule_id):
        types = "*" if r.res_types is None else ",".join(sorted(r.res_types))
        console.print(
            f"{r.rule_id:<24} {r.effect:<5} {r.actor:<14} {r.profession:<15} {r.action:<5} "
            f"{r.relationship:<16} {types}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@rules_app.command("set")
def set_rule(
    rule_id: Annotated[str, typer.Argument(help="The rule to change.")],
    effect: Annotated[str | None, typer.Option(help="allow or deny")] = None,
    types: Annotated[
        str | None, typer.Option(help="'*' or a comma-separated list of types")
    ] = None,
) -> None:
    """Change a rule's effect or resource types (audited; servers pick it up within seconds)."""
    from carnet.audit.events import Actor, build_event
    from carnet.cli import _fail, _services, console
    from carnet.db.engine import writing
    from carnet.policy.rules import RuleError, edit_rule
    from carnet.settings import Settings

    services = _services(Settings.from_env())
    try:
        with writing(services.engine) as conn:
            edit_rule(conn, rule_id, effect=effect, res_types=types)
    except RuleError as err:
        services.close()
        raise _fail(str(err)) from None
    actor = Actor(actor="operator:cli", source="cli", purpose="administration", rule=rule_id)
    services.audit.append([build_event(actor, "rule-edit", None, 200, [])])
    services.close()
    console.print(f"rule {rule_id} updated", highlight=False, markup=False)

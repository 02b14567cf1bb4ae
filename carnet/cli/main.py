"""The `carnet` command: the root app, to which each domain adds its own commands.

Each command prints one clear line and exits non-zero on failure (carnet/cli/shell.py).
"""

from __future__ import annotations

import gc
import sys

import typer

from carnet.audit import cli as audit_cli
from carnet.authn import cli as authn_cli
from carnet.backup import cli as backup_cli
from carnet.cli import serve as serve_cli
from carnet.cli.shell import err, fail, read_settings, storage_failure_line
from carnet.crypto import cli as crypto_cli
from carnet.db import cli as db_cli
from carnet.demo import cli as demo_cli
from carnet.fhir import cli as fhir_cli
from carnet.hub import cli as hub_cli
from carnet.hub.omop import cli as omop_cli
from carnet.identity import cli as identity_cli
from carnet.policy import cli as policy_cli
from carnet.record import cli as record_cli
from carnet.screening import cli as screening_cli
from carnet.sovereignty import cli as sovereignty_cli
from carnet.watch import cli as watch_cli


def build_app() -> typer.Typer:
    """The root app with every domain's commands, in the order `carnet --help` lists them."""
    root = typer.Typer(
        help="Carnet: sovereign health record and research data hub.", no_args_is_help=True
    )
    root.callback()(read_settings)
    serve_cli.register(root)  # serve
    demo_cli.register(root)  # demo
    fhir_cli.register(root)  # import
    db_cli.register(root)  # migrate
    crypto_cli.register(root)  # keys
    audit_cli.register(root)  # audit
    identity_cli.register(root)  # identity
    accounts = record_cli.register(root)  # accounts: personal spaces
    authn_cli.register(root, accounts=accounts)  # accounts add-*: logins; clients; token
    policy_cli.register(root)  # rules
    hub = hub_cli.register(root)  # hub: roles, permits, workspace, catalogue
    omop_cli.register(root, hub)  # hub extract, hub rekey
    screening_cli.register(root)  # screen
    backup_cli.register(root)  # backup, restore
    sovereignty_cli.register(root)  # sovereignty
    watch_cli.register(root)  # watch: abnormal access, the security officer's queue
    return root


app = build_app()


def main() -> None:
    """The console-script entry point (`carnet`, `python -m carnet`)."""
    # What is loaded by now (every module, the command tree) lives as long as the process: out of
    # the cycle collector's sight, each full collection no longer walks ~170,000 objects.
    gc.freeze()
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        # A full or read-only disk met in any command: one line, not a traceback.
        line = storage_failure_line(exc)
        if line is None:
            raise
        fail(line)
        sys.exit(1)

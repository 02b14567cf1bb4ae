"""The `carnet` command line: shell.py (what commands share), main.py (the root app), serve.py.

Each domain's commands live in its own package (carnet/<domain>/cli.py) and import shell.py only.
"""

from __future__ import annotations


def main() -> None:
    """Entry point kept for console scripts installed before the CLI became a package (they call
    ``carnet.cli:main``); pyproject.toml names ``carnet.cli.main:main``. The root app is imported
    here, when called, so that importing carnet.cli.shell never loads every domain's commands."""
    from carnet.cli.main import main as run

    run()

"""`python -m carnet` runs the CLI."""

from carnet.cli import main

main()

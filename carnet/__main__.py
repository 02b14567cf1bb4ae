"""`python -m carnet` runs the CLI."""

from carnet.cli.main import main

main()

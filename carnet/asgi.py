"""ASGI entry point for uvicorn workers: settings come from the environment."""

import sys

from carnet.app import create_app
from carnet.settings import Settings
from carnet.sovereignty.report import SovereigntyRefusedError

try:
    app = create_app(Settings.from_env())
except (
    SovereigntyRefusedError
) as refused:  # one clear line, not a traceback through uvicorn's loader
    sys.exit(f"error: {refused}")

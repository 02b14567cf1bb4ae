"""ASGI entry point for uvicorn workers: settings come from the environment."""

import gc
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

# The modules, the routes and the FHIR definitions live as long as the worker: moved out of the
# cycle collector's sight, so that its full collections during requests walk only what requests
# made (carnet/cli/main.py does the same for commands).
gc.freeze()

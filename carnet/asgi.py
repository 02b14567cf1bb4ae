"""ASGI entry point for uvicorn workers: settings come from the environment."""

from carnet.app import create_app
from carnet.settings import Settings

app = create_app(Settings.from_env())

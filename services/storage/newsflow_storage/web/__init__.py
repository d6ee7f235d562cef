"""Storage's web page: browse and search what was stored, see what cleanup did, watch the pipeline.

Served by the storage service itself at ``/`` (same host, port and token as the API). Pages are
rendered on the server with Jinja2 (autoescaping on: article text is hostile input) and work without
JavaScript; ``static/`` holds the only assets, shipped in the package, nothing fetched at run time.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ..settings import StorageSettings
from .auth import WebAuth
from .pipeline import LagProbe
from .routes import router

STATIC = Path(__file__).parent / "static"


def add_web(app: FastAPI, settings: StorageSettings) -> None:
    """Mount the pages and their assets on the API's app; state the routes read lives on ``app.state``."""
    token = settings.storage_api_token.get_secret_value() if settings.storage_api_token else None
    app.state.web_auth = WebAuth(token)
    app.state.web_settings = settings
    app.state.lag_probe = LagProbe(settings)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


__all__ = ["add_web"]

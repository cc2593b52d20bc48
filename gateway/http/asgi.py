"""ASGI entry point for process managers: ``uvicorn gateway.http.asgi:app`` (settings from the
environment)."""

from gateway.http.app import create_app
from gateway.http.runtime import tune_gc
from gateway.settings import Settings

app = create_app(Settings.from_env())
tune_gc()

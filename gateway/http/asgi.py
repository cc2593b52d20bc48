"""ASGI entry point for process managers (settings from the environment)::

    uvicorn gateway.http.asgi:app --http gateway.http.protocol:HeadBoundedProtocol

``--http`` bounds each request's head (size, count, time: ``gateway.http.protocol``); without
it uvicorn's own protocol reads heads of any size, and the app says so in one warning."""

from gateway.http.app import create_app
from gateway.http.protocol import warn_unless_head_bounded
from gateway.http.runtime import tune_gc
from gateway.settings import Settings

settings = Settings.from_env()
app = warn_unless_head_bounded(create_app(settings, graphiql_user=settings.graphiql_user))
tune_gc()

"""The HTTP layer: the Starlette app, its GraphQL endpoint and the ASGI entry point."""

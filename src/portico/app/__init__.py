"""Composition root: build every object from `Settings`, mount the routes, run startup and shutdown.

`application.py` is the ASGI application (the raw chat paths by exact match, `/health`, the lifespan), `parts.py`
the pieces it is built from that need a decision of their own, `admin.py` the FastAPI admin surface, built on the
first admin request. This package is the only place that wires layers together.
"""

from portico.app.application import PorticoApp, create_app, create_app_from_env, validate_config

__all__ = ["PorticoApp", "create_app", "create_app_from_env", "validate_config"]

"""The admin surface (every route but the raw chat paths and `/health`): the FastAPI app and its routes, wired to
the gateway's stores. Built on the first admin request (`PorticoApp.admin`), so a process that only serves
traffic never imports FastAPI or any of these modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portico.http.admin_deps import require_gateway_key
from portico.http.asgi import ASGIApp
from portico.http.routes.admin import create_admin_app
from portico.http.routes.analytics import mount_analytics
from portico.http.routes.deployments import orq_model
from portico.http.routes.deployments_admin import mount_deployments_admin
from portico.http.routes.guardrails_admin import mount_guardrails_admin
from portico.http.routes.knowledge_admin import mount_knowledge_admin
from portico.http.routes.logs import mount_logs
from portico.http.routes.people import mount_people
from portico.http.routes.prompts_admin import mount_prompts_admin
from portico.http.routes.routing_admin import mount_routing_admin
from portico.storage.analytics import UsageAnalytics
from portico.storage.people import PeopleReads

if TYPE_CHECKING:
    from portico.app.application import PorticoApp


def build_admin(app: PorticoApp) -> ASGIApp:
    """The FastAPI app with every admin, log, analytics and knowledge route mounted on `app`'s objects."""
    guard = require_gateway_key(app.auth) if app.settings.metrics.require_key else None
    admin = create_admin_app(
        health=app.health_report, models=app.model_list, metrics=app.metrics.render, metrics_guard=guard
    )
    mount_logs(admin, app.logs, app.auth)
    mount_people(admin, PeopleReads(app.db, app.logs), app.auth)
    mount_analytics(admin, UsageAnalytics(app.db), app.auth)
    stored_guardrail = lambda g: app.guardrails.get(g) is not None  # noqa: E731 - a config's hooks may name one
    mount_routing_admin(admin, app.vault, app.auth, app.is_provider, stored_guardrail)
    mount_prompts_admin(admin, app.prompts, app.auth)
    mount_knowledge_admin(admin, app.knowledge, app.auth, app.settings.knowledge.max_upload_bytes)
    mount_guardrails_admin(admin, app.guardrails, app.auth, app.is_provider)
    mount_deployments_admin(
        admin, app.deployments, app.prompts.get, app.auth, lambda address: orq_model(app.providers, address)
    )
    return admin

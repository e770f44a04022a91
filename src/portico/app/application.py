"""The ASGI application: every object built from `Settings`, the chat paths dispatched to their raw ASGI handlers
by exact path match, `/health` answered here, everything else handed to the admin app (`admin.py`), and the
lifespan (startup, shutdown, the call record of each exchange)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from functools import partial
from typing import Any

import orjson

from portico.app.parts import body_policy, health_state, pricing_of, secret_box, tune_process
from portico.cache.base import Cache, open_cache
from portico.config.load import load_settings, portico_home
from portico.config.schema import Settings
from portico.config_check import provider_configs, validate_config
from portico.core.errors import PorticoError
from portico.core.ids import time_ordered_id
from portico.http.access import logged
from portico.http.asgi import ASGIApp, Receive, Scope, Send, send_json
from portico.http.auth import Authenticator
from portico.http.errors import error_body, error_headers
from portico.http.health import LIVE_BODY, build_probes
from portico.http.records import record_from_exchange, served_cost
from portico.http.routes.chat import ChatEndpoint, Exchange
from portico.http.routes.deployments import DeploymentEndpoint
from portico.http.routes.embeddings import EmbeddingsEndpoint
from portico.http.routes.table import RAW_ROUTES
from portico.knowledge.service import KnowledgeService
from portico.observability.access_log import AccessLog
from portico.observability.logging import configure_logging
from portico.observability.metrics import METRICS_DIR_ENV, METRICS_FLUSH_SECONDS, Metrics
from portico.observability.recorder import Recorder
from portico.observability.startup import STARTUP_FAILURE, report_startup_failure
from portico.observability.trace_context import build_tracing
from portico.observability.worker_health import WorkerHealth
from portico.pipeline.embedding import Embeddings, call_log
from portico.pipeline.gateway import Gateway
from portico.pipeline.guarding import GuardrailCatalog
from portico.pipeline.routing import Router
from portico.pipeline.stored_guardrails import StoredGuardrails, provider_moderator, transport_poster
from portico.providers.registry import ProviderRegistry
from portico.providers.transport import Transport
from portico.storage.db import Database
from portico.storage.deployments import DeploymentStore
from portico.storage.guardrails import GuardrailStore
from portico.storage.people import IdentityProfiles
from portico.storage.prompts import PromptLibrary
from portico.storage.repos import RequestLogRepo
from portico.storage.synced import StateSync, notify_url
from portico.storage.vault import Vault

log = logging.getLogger("portico")


__all__ = ["PorticoApp", "create_app", "create_app_from_env", "validate_config"]


class PorticoApp:
    """The ASGI application."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.transport = Transport()
        self.providers = ProviderRegistry.build(provider_configs(settings))
        self.health = health_state(settings)
        self.cache: Cache = open_cache(settings.cache)
        router = Router(self.health, max_retry_after=settings.routing.max_retry_after_seconds)
        self.db = Database(
            settings.storage.url or f"sqlite:///{portico_home() / 'portico.db'}",
            connect_timeout=settings.storage.connect_timeout,
            statement_timeout=settings.storage.statement_timeout,
        )
        sync = StateSync(self.db, notify_url=notify_url(settings), interval=settings.storage.sync_interval_seconds)
        self.prompts = PromptLibrary(sync)
        self.deployments = DeploymentStore(sync)
        self.guardrails = GuardrailStore(sync)
        moderate = provider_moderator(self.transport, self.providers)
        stored_guardrails = StoredGuardrails(self.guardrails.get, transport_poster(self.transport), moderate)
        moderation = settings.guardrails.moderation.model_dump() if settings.guardrails.moderation else None
        self.gateway = Gateway(
            self.providers,
            self.transport,
            router,
            self.cache,
            prompts=self.prompts.get,
            guardrails=GuardrailCatalog(stored_guardrails, moderation, moderate),
        )
        self.auth = Authenticator(settings.auth.keys)
        self.vault = Vault(secret_box(), sync)
        self.logs = RequestLogRepo(self.db)
        self.metrics = Metrics(share_dir=os.environ.get(METRICS_DIR_ENV))
        self.workers = WorkerHealth(self.metrics.share_dir, stale_after=max(5.0, 10 * METRICS_FLUSH_SECONDS))
        self._metrics_flush: asyncio.Task[None] | None = None
        self.pricing = pricing_of(settings)
        self.tracing = build_tracing(settings.telemetry, os.environ)
        self.recorder = Recorder(self.logs, queue_size=settings.logging.queue_size, metrics=self.metrics)
        self.profiles = IdentityProfiles(self.db)
        self.gateway.price = partial(served_cost, self.pricing)
        bodies = body_policy(settings, self.providers)
        self.chat = ChatEndpoint(
            self.gateway,
            self.auth,
            max_body_bytes=settings.server.max_body_bytes,
            on_done=self.record,
            custom_host_allowlist=settings.portkey.custom_host_allowlist,
            virtual_keys=self.vault.resolve,
            stored_configs=self._stored_config,
            is_provider=self.is_provider,
            price=partial(served_cost, self.pricing),
            tracing=self.tracing is not None,
            bodies=bodies,
        )
        self.deployment_endpoint = DeploymentEndpoint(
            self.gateway,
            self.auth,
            self.deployments.get,
            self.prompts.get,
            max_body_bytes=settings.server.max_body_bytes,
            on_done=self.record,
            price=partial(served_cost, self.pricing),
            tracing=self.tracing is not None,
            bodies=bodies,
        )
        self.embeddings = Embeddings(  # `app.embeddings`: the knowledge service's `Embedder` too
            self.providers,
            self.transport,
            router,
            cache=self.cache,
            price=self.pricing.cost,
            record=call_log(self.metrics.observe, self.recorder.submit if settings.logging.request_log else None),
        )
        knowledge = settings.knowledge
        self.knowledge = KnowledgeService(  # `app.knowledge`: the bases, their ingest, and `KnowledgeSearch`
            self.db,
            sync,
            self.embeddings,
            ingest_concurrency=knowledge.ingest_concurrency,
            batch_size=knowledge.embed_batch_size,
            vector_cache_bytes=knowledge.vector_cache_bytes,
        )
        self.gateway.use_knowledge(self.knowledge)  # the retrieval stage searches through it (`knowledge_bases`)
        self.embeddings_endpoint = EmbeddingsEndpoint(
            self.embeddings,
            self.gateway,
            self.auth,
            max_body_bytes=settings.server.max_body_bytes,
            on_done=self.record,
            price=partial(served_cost, self.pricing),
            bodies=bodies,
        )
        handlers: dict[str, ASGIApp] = {
            "chat": self.chat,
            "deployments": self.deployment_endpoint,
            "embeddings": self.embeddings_endpoint,
        }
        self._raw: dict[str, tuple[str, ASGIApp]] = {
            path: (route.method, handlers[route.endpoint]) for route in RAW_ROUTES for path in route.paths
        }
        self._admin: ASGIApp | None = None
        self._admin_lock = asyncio.Lock()
        self.probes = build_probes(
            self.db,
            self.cache,
            self.health,
            sync,
            interval=settings.health.probe_interval_seconds,
            timeout=settings.health.probe_timeout_seconds,
        )
        self.access_log = AccessLog() if settings.logging.access_log else None
        self._keyed_routes = frozenset(settings.auth.keyed_routes if settings.auth.keys else ())
        self.ready = False

    def _stored_config(self, config_id: str) -> Mapping[str, Any] | None:
        return self.vault.config(config_id) or self.settings.portkey.configs.get(config_id)

    def is_provider(self, name: str) -> bool:
        return name in self.providers.all()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = self._raw.get(scope["path"])
            if raw is not None and raw[0] == scope["method"]:
                await raw[1](scope, receive, send)
                return
            if scope["path"] in ("/health", "/health/live") and scope["method"] in ("GET", "HEAD"):
                await self._health(scope["path"], send)
                return
            if scope["path"] in self._keyed_routes and not await self._key_presented(scope, send):
                return
            await (await self.admin())(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            await (await self.admin())(scope, receive, send)

    async def admin(self) -> ASGIApp:
        """The FastAPI app behind every other route, built on first use.

        A process that only serves traffic (and probes `/health`) never loads FastAPI and its routes: ~10 MiB of
        RSS. The first admin request builds it in a worker thread, so the imports do not stall the event loop.
        """
        if self._admin is None:
            async with self._admin_lock:
                if self._admin is None:
                    from portico.app.admin import build_admin  # FastAPI and the admin routes

                    admin = await asyncio.to_thread(build_admin, self)
                    self._admin = logged(admin, self.access_log)
        return self._admin

    async def _key_presented(self, scope: Scope, send: Send) -> bool:
        """`auth.keyed_routes`: a route open by default that this config closes; a 401 in the gateway's shape."""
        try:
            self.auth.client_key(dict(scope["headers"]))
        except PorticoError as exc:
            headers = [(b"x-request-id", time_ordered_id().encode()), *error_headers(exc)]
            await send_json(send, exc.http_status, error_body(exc, "openai"), headers)
            return False
        return True

    async def _health(self, path: str, send: Send) -> None:
        """`GET /health` without the admin app: load balancers poll it, and it must answer while the rest loads.
        The FastAPI app declares the same routes, so /docs still documents them. `/health/live` reads nothing."""
        headers = [(b"x-request-id", time_ordered_id().encode())]
        if path == "/health/live":
            await send_json(send, 200, LIVE_BODY, headers)
            return
        report = self.health_report()
        await send_json(send, 200 if report.get("ready") else 503, orjson.dumps(report), headers)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    report_startup_failure(exc)
                    await self._close_quietly()  # no "Unclosed client session" after a failed start
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        await self.transport.start()
        calls = self.settings.logging
        # Serve even while the database is away: the schema is set up when it answers, records wait meanwhile.
        await self.db.start(retry_max_seconds=calls.retry_max_seconds)
        await self.vault.sync.start()  # never raises: an unreachable database is logged and retried
        await self.knowledge.start()  # resumes unfinished ingests; never raises either
        recorder = self.recorder
        recorder.write_timeout, recorder.outage.retry_max_seconds = calls.write_timeout, calls.retry_max_seconds
        recorder.spool_after_seconds = calls.spool_after_seconds
        if calls.request_log and calls.spool_max_bytes and not self.db.memory:
            database = self.db.url.render_as_string(hide_password=True) + f"?schema={self.db.schema or ''}"
            spool_dir = calls.spool_dir or portico_home() / "spool"
            await recorder.open_spool(spool_dir, calls.spool_max_bytes, database=database)
        await self.recorder.start()
        if self.metrics.share_dir is not None:
            self._metrics_flush = asyncio.create_task(self._flush_metrics())
        await self.probes.start()  # the first round now, bounded: /health is truthful from the first answer
        tune_process()
        self.ready = True

    async def shutdown(self) -> None:
        self.ready = False
        if self._metrics_flush is not None:
            self._metrics_flush.cancel()
        await self.probes.close()
        if self.access_log is not None:
            self.access_log.close()
        await self.recorder.stop()  # drains the call log before the database closes
        await self.profiles.close()
        await self.logs.close()
        await self.knowledge.close()  # stops ingests and gives their leases back (the next start resumes them)
        await self.vault.sync.close()
        await self.db.close()
        await self.chat.watches.close()
        await self.deployment_endpoint.watches.close()
        await self.embeddings_endpoint.watches.close()
        await self.transport.close()
        await self.cache.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.close)  # flushes queued spans: blocking I/O
        self.metrics.flush()  # this worker's last counts stay in the gateway's totals
        self.workers.withdraw()
        close = getattr(self.health, "close", None)
        if close is not None:
            await close()

    async def _close_quietly(self) -> None:
        try:
            await self.shutdown()
        except Exception:  # the start already failed; that failure is the one worth reading
            log.debug("cleanup after a failed start failed", exc_info=True)

    async def _flush_metrics(self) -> None:
        """Every worker's counts reach the others' `/metrics` within `METRICS_FLUSH_SECONDS`."""
        while True:
            try:
                self.metrics.flush()
                own = {"ready": self.ready, "recorder": self.recorder.stats()}
                await asyncio.to_thread(self.workers.exchange, own)  # and /health's view of the other workers
            except Exception:  # a full disk or a bug must not stop the flushes for good
                log.warning("could not write this worker's metrics to %s", self.metrics.share_dir, exc_info=True)
            await asyncio.sleep(METRICS_FLUSH_SECONDS)

    def record(self, ex: Exchange) -> None:
        """Called once per chat exchange after its response was sent: count it, and queue it for the call log."""
        try:
            call = record_from_exchange(ex, self.pricing)
            self.metrics.observe(call)
            if self.tracing is not None:
                self.tracing.export(call, ex.finish_reasons or ())
            if self.settings.logging.request_log:
                self.recorder.submit(call)
                identity = ex.request.trace.identity if ex.request is not None else None
                if identity:  # its profile, when sent and changed (storage/people.py)
                    self.profiles.note(identity, call.created_at)
            if self.access_log is not None:
                self.access_log.write(
                    "POST", ex.path, ex.status, max(0.0, ex.finished - ex.started) * 1000, ex.request_id
                )
        except Exception:  # a bug here must not turn a served request into a failed one
            log.exception("could not record request %s", ex.request_id)

    def health_report(self) -> dict[str, Any]:
        cache = self.cache.health()
        recorder = self.recorder.stats()
        storage_ok = self.db.ready and self.recorder.healthy  # records waiting on the database degrade
        workers = None
        if self.workers.shared:  # several workers: the whole server's recorder, and each worker's
            server = self.workers.report({"ready": self.ready, "recorder": recorder})
            recorder, workers = server["recorder"], server["workers"]
            storage_ok = storage_ok and self.workers.healthy(workers)
        report = {
            "status": "ok" if cache.ok and storage_ok and self.probes.ok else "degraded",
            "ready": self.ready,
            "providers": sorted(self.providers.all()),
            "cache": {"backend": cache.backend, "ok": cache.ok, "detail": cache.detail},
            "storage": {
                "backend": self.db.backend,
                "ok": storage_ok,
                "schema_ready": self.db.ready,
                "last_error": self.db.last_error or self.recorder.last_error,
            },
            "recorder": recorder,
            "routing": self.health.snapshot(),
            "dependencies": self.probes.report(),
        }
        if workers is not None:
            report["workers"] = workers
        return report

    def model_list(self) -> list[dict[str, Any]]:
        return [
            {"id": f"{name}/{model}", "object": "model", "created": 0, "owned_by": name}
            for name, provider in sorted(self.providers.all().items())
            for model in provider.models()
        ]


def create_app(settings: Settings | None = None) -> PorticoApp:
    return PorticoApp(settings or Settings())


def create_app_from_env() -> PorticoApp:
    """uvicorn's factory for `portico serve` (also in every worker process): config path from $PORTICO_CONFIG.

    A worker that cannot build the app exits with uvicorn's start-up failure code (3) after one readable line:
    the supervisor then stops the whole server instead of respawning workers that would fail the same way."""
    try:
        settings = load_settings(os.environ.get("PORTICO_CONFIG") or None)
        configure_logging(settings.logging.level)
        if settings.storage.url is None:
            portico_home().mkdir(parents=True, exist_ok=True)
        return create_app(settings)
    except Exception as exc:
        report_startup_failure(exc)
        raise SystemExit(STARTUP_FAILURE) from None

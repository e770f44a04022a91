"""The endpoints served by raw ASGI handlers, in one table: the app dispatches on it and /docs declares it.

A new endpoint is one entry here plus its handler (named by `endpoint`) where the app builds its handlers.
Everything not listed goes to the FastAPI admin app.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from portico.wire.deployments import DeploymentInvoke
from portico.wire.embeddings import EmbeddingCreate
from portico.wire.openai_chat import ChatCompletionRequest


@dataclass(frozen=True, slots=True)
class RawRoute:
    endpoint: str
    """The handler's name in the app's handler map."""
    path: str
    summary: str
    request_schema: type[msgspec.Struct]
    aliases: tuple[str, ...] = ()
    """Further paths served the same way, not listed separately in /docs (no redirect for them)."""
    method: str = "POST"

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.path, *self.aliases)


_CHAT = "Create a chat completion (JSON, or SSE with stream: true)"
_INVOKE = "Invoke a deployment (JSON, or SSE with stream: true)"

RAW_ROUTES: tuple[RawRoute, ...] = (
    RawRoute("chat", "/v1/chat/completions", _CHAT, ChatCompletionRequest, aliases=("/v1/chat/completions/",)),
    RawRoute("chat", "/v2/router/chat/completions", _CHAT, ChatCompletionRequest),
    RawRoute("chat", "/v2/gateway/chat/completions", _CHAT, ChatCompletionRequest),
    RawRoute("deployments", "/v2/deployments/invoke", _INVOKE, DeploymentInvoke),
    RawRoute("deployments", "/v2/deployments/stream", "Invoke a deployment, answered as SSE", DeploymentInvoke),
    RawRoute("deployments", "/v2/deployments/get_config", "The resolved variant; no model is called", DeploymentInvoke),
    RawRoute("embeddings", "/v1/embeddings", "Create embeddings (OpenAI's shape; float or base64)", EmbeddingCreate),
)

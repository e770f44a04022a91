"""POST /v1/embeddings: one raw ASGI handler built on the chat endpoint's exchange.

Parse → authenticate → validate → `Embeddings.create()` → OpenAI's answer. Auth, body limits, error bodies, the
disconnect watch and the call record (path, tokens, cost when priced, latency, status) are the chat endpoint's.
"""

from __future__ import annotations

import orjson

from portico.core.errors import MalformedJSON
from portico.core.types import ChatRequest
from portico.http.asgi import Receive, Scope, Send, read_body, send_json
from portico.http.auth import Authenticator
from portico.http.routes.chat import ChatEndpoint, Exchange, OnDone, PriceServed, _overhead_ms, response_headers
from portico.observability.bodies import BodyPolicy
from portico.pipeline.embedding import Embeddings
from portico.pipeline.gateway import Gateway
from portico.pipeline.served import Served
from portico.wire.embeddings import embedding_job, embeddings_body, validate_embeddings


class EmbeddingsEndpoint(ChatEndpoint):
    def __init__(
        self,
        embeddings: Embeddings,
        gateway: Gateway,
        auth: Authenticator,
        *,
        max_body_bytes: int,
        on_done: OnDone,
        price: PriceServed | None = None,
        bodies: BodyPolicy | None = None,
    ) -> None:
        super().__init__(gateway, auth, max_body_bytes=max_body_bytes, on_done=on_done, price=price, bodies=bodies)
        self.embeddings = embeddings

    async def _handle(
        self, ex: Exchange, scope: Scope, headers: dict[bytes, bytes], receive: Receive, send: Send
    ) -> None:
        client_key = self.auth.client_key(headers)
        body = await read_body(receive, headers, self.max_body_bytes)
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise MalformedJSON() from None
        wire = validate_embeddings(raw)
        # The call record reads model, client key and trace from a request: a bodiless one says them.
        ex.request = ChatRequest(model=wire.model, body={}, client_key=client_key)
        self.watches.watch(ex, receive)
        served = ex.served = Served()
        result = await self.embeddings.create(embedding_job(wire, client_key), served)
        answer = embeddings_body(result, wire.encoding_format, result.model or served.model)
        ex.overhead_ms = _overhead_ms(ex, served)
        if self.price is not None:
            ex.cost_usd = self.price(served)
        await send_json(send, 200, answer, response_headers(ex, served))

"""Cohere Chat v2 (`POST /v2/chat`) as a native adapter: OpenAI chat bodies → Cohere's, and back.

v2 is close to OpenAI's shape (roles, OpenAI-style tools and tool calls with ids), so most of the work is naming
(`p`/`k`, `stop_sequences`, upper-case `tool_choice`) and the few real differences: an assistant's text next to
its tool calls is Cohere's `tool_plan`; reasoning is a `thinking` content item; documents are a top-level list.
What Cohere cannot honour and would change the answer is refused with a 400 naming it (`n` > 1, `top_logprobs`,
`logit_bias`, audio, PDFs); harmless OpenAI-only fields are dropped and reported in `x-portico-dropped-params`;
nothing unknown is sent. Responses and streams are translated in `cohere_stream`.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from collections.abc import Mapping
from typing import Any

import orjson

from portico.core.embeddings import EmbeddingRequest, EmbeddingResult, RerankRequest, RerankResult
from portico.core.errors import ProviderError, UnsupportedParameter, UpstreamHTTPError
from portico.core.types import ChatRequest, ChatResult, JSONObject
from portico.providers import cohere_embed
from portico.providers.base import (
    CallOptions,
    HttpCall,
    HttpProvider,
    StreamParser,
    credentials_view,
    decode_json_object,
    parse_retry_after,
)
from portico.providers.cohere_stream import CohereStreamParser, completion_from_response
from portico.providers.registry import Register, hookimpl
from portico.providers.transport import Transport

MAPPED_PARAMS = frozenset(
    {
        "messages", "tools", "tool_choice", "functions", "function_call", "response_format", "stop", "temperature",
        "top_p", "top_k", "presence_penalty", "frequency_penalty", "seed", "max_tokens", "max_completion_tokens",
        "n", "logprobs", "top_logprobs", "thinking", "reasoning_effort", "stream_options", "modalities",
    }
)  # fmt: skip
NATIVE_PARAMS = frozenset({"documents", "citation_options", "safety_mode", "strict_tools"})
"""Cohere-only request fields a client may send through the gateway; they reach Cohere verbatim."""

REFUSED_PARAMS = {
    "logit_bias": "Cohere v2 has no token biasing",
    "audio": "Cohere does not return audio",
    "web_search_options": "Cohere v2 chat has no built-in web search",
}
_TEXT_MIMES = ("text/", "application/json", "application/xml", "application/x-yaml", "application/yaml")


class CohereProvider(HttpProvider):
    kind = "cohere"
    default_base_url = "https://api.cohere.com"

    max_embed_batch = cohere_embed.MAX_BATCH

    def build_request(self, request: ChatRequest, model: str) -> HttpCall:
        payload, dropped = translate_request(request.body, model, self.name)
        payload["stream"] = request.stream
        headers = self._headers(request)
        if request.stream:
            headers["Accept"] = "text/event-stream"
        return HttpCall(
            url=self._url(request, "/chat"),
            headers=headers,
            body=orjson.dumps(payload),
            framing="sse",
            dropped_params=tuple(dropped),
        )

    def _headers(self, request: ChatRequest) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self.extra_headers(request)}
        key = self.api_key(request)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _url(self, request: ChatRequest, path: str) -> str:
        root = self.url_base(request)
        return f"{root if root.endswith('/v2') else root + '/v2'}{path}"

    async def embed(
        self, request: EmbeddingRequest, model: str, transport: Transport, options: CallOptions
    ) -> EmbeddingResult:
        view = credentials_view(request.credentials)
        body = orjson.dumps(cohere_embed.embed_payload(request, model))
        call = HttpCall(self._url(view, "/embed"), self._headers(view), body)
        data, _ = await self.send_json(call, transport, options, request.credentials)
        count = len(request.texts)
        return self.parse_guarded(lambda d: cohere_embed.parse_embed(d, model, count), data, "embed answer")

    async def rerank(
        self, request: RerankRequest, model: str, transport: Transport, options: CallOptions
    ) -> RerankResult:
        view = credentials_view(request.credentials)
        body = orjson.dumps(cohere_embed.rerank_payload(request, model))
        call = HttpCall(self._url(view, "/rerank"), self._headers(view), body)
        data, _ = await self.send_json(call, transport, options, request.credentials)
        count, top_n = len(request.documents), request.top_n
        return self.parse_guarded(lambda d: cohere_embed.parse_rerank(d, count, top_n), data, "rerank answer")

    def parse_response(self, body: bytes, model: str) -> ChatResult:
        completion = completion_from_response(decode_json_object(body, self.name), model)
        return ChatResult(body=completion, model=model)

    def stream_parser(self, request: ChatRequest, model: str) -> StreamParser:
        return CohereStreamParser(self.name, model)

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
        """Cohere errors are `{"message": ...}` (sometimes with an `id`); 498 is its invalid-token status."""
        try:
            data: Any = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        message = body[:500].decode("utf-8", "replace").strip()
        if isinstance(data, dict) and data.get("message"):
            message = str(data["message"])
        return UpstreamHTTPError(
            message or f"{self.name} returned HTTP {status}",
            provider=self.name,
            upstream_status=401 if status == 498 else status,
            retry_after=parse_retry_after(headers),
            body=data,
        )


def translate_request(body: Mapping[str, Any], model: str, provider: str) -> tuple[JSONObject, list[str]]:
    """OpenAI chat body (without model/stream) → a `/v2/chat` body (without `stream`), plus dropped parameters."""
    dropped: list[str] = []
    for key, value in body.items():
        if value is None or key in MAPPED_PARAMS or key in NATIVE_PARAMS:
            continue
        if key in REFUSED_PARAMS:
            raise UnsupportedParameter(provider, key, REFUSED_PARAMS[key])
        dropped.append(key)
    if body.get("n") is not None and int(body["n"]) > 1:
        raise UnsupportedParameter(provider, "n", "Cohere returns one message per request; send n requests")
    if body.get("logprobs") and body.get("top_logprobs"):
        raise UnsupportedParameter(provider, "top_logprobs", "Cohere reports the chosen tokens' log probabilities only")
    if any(kind != "text" for kind in body.get("modalities") or ()):
        raise UnsupportedParameter(provider, "modalities", "Cohere replies in text only")
    documents: list[JSONObject] = []
    payload: JSONObject = {
        "model": model,
        "messages": translate_messages(body.get("messages") or [], provider, documents),
    }
    _tools(body, payload)
    for source, target in (
        ("temperature", "temperature"),
        ("presence_penalty", "presence_penalty"),
        ("frequency_penalty", "frequency_penalty"),
    ):
        if body.get(source) is not None:
            payload[target] = body[source]
    if body.get("top_p") is not None:
        payload["p"] = min(max(float(body["top_p"]), 0.01), 0.99)  # Cohere's range; 1.0 means "no cut" anyway
    for source, target in (("top_k", "k"), ("seed", "seed")):
        if body.get(source) is not None:
            payload[target] = int(body[source])
    limit = body.get("max_completion_tokens")
    limit = body.get("max_tokens") if limit is None else limit
    if limit is not None:
        payload["max_tokens"] = int(limit)
    stop = body.get("stop")
    if stop:
        payload["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("logprobs"):
        payload["logprobs"] = True
    _response_format(body.get("response_format"), payload, provider)
    thinking = _thinking(body, dropped)
    if thinking:
        payload["thinking"] = thinking
    for key in sorted(NATIVE_PARAMS):
        if body.get(key) is not None:
            payload[key] = body[key]
    if documents:
        payload["documents"] = [*(payload.get("documents") or ()), *documents]
    return payload, sorted(dropped)


def _tools(body: Mapping[str, Any], payload: JSONObject) -> None:
    """OpenAI tools are already Cohere v2 tools, minus `strict` (Cohere's is request-wide: `strict_tools`)."""
    functions = [t["function"] for t in body.get("tools") or () if isinstance(t.get("function"), dict)]
    functions.extend(body.get("functions") or ())
    if not functions:
        return
    choice = body.get("tool_choice", body.get("function_call"))
    if isinstance(choice, dict):  # Cohere can only force "some tool": offering just the named one forces it
        name = (choice.get("function") or choice).get("name")
        functions = [fn for fn in functions if fn.get("name") == name] or functions
        choice = "required"
    tools = []
    for fn in functions:
        spec: JSONObject = {"name": fn["name"], "parameters": fn.get("parameters") or {"type": "object"}}
        if fn.get("description"):
            spec["description"] = fn["description"]
        tools.append({"type": "function", "function": spec})
    payload["tools"] = tools
    if any(fn.get("strict") for fn in functions) and body.get("strict_tools") is None:
        payload["strict_tools"] = True
    if choice in ("none", "required"):
        payload["tool_choice"] = str(choice).upper()


def _response_format(fmt: Any, payload: JSONObject, provider: str) -> None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        payload["response_format"] = {"type": "json_object"}
    elif kind == "json_schema" and isinstance(fmt, dict):
        schema = (fmt.get("json_schema") or {}).get("schema")
        payload["response_format"] = {"type": "json_object", **({"json_schema": schema} if schema else {})}
    elif kind not in (None, "text"):
        raise UnsupportedParameter(provider, "response_format", f"type '{kind}' has no Cohere equivalent")


def _thinking(body: Mapping[str, Any], dropped: list[str]) -> JSONObject | None:
    """Cohere's `thinking` is on/off plus a token budget; `reasoning_effort` maps to on (any level) or off (none)."""
    thinking, effort = body.get("thinking"), body.get("reasoning_effort")
    if isinstance(thinking, dict):
        if effort is not None:
            dropped.append("reasoning_effort")
        if thinking.get("type") == "disabled":
            return {"type": "disabled"}
        budget = thinking.get("budget_tokens") if thinking.get("type") == "enabled" else None
        return {"type": "enabled", **({"token_budget": int(budget)} if budget is not None else {})}
    if effort is not None:
        return {"type": "disabled"} if effort == "none" else {"type": "enabled"}
    return None


def translate_messages(messages: list[Any], provider: str, documents: list[JSONObject]) -> list[JSONObject]:
    """Roles map one to one (developer → system, legacy function → tool with a synthesised call id).

    Empty assistant turns are dropped (Cohere refuses them); an assistant's text beside tool calls becomes the
    `tool_plan`, which is where Cohere itself puts it; `reasoning` goes back as a `thinking` content item. Text
    files become request `documents` (which Cohere cites); a user turn that held only files says so in text,
    because Cohere refuses an empty user turn.
    """
    out: list[JSONObject] = []
    legacy: dict[str, str] = {}
    for i, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _text(content)})
        elif role == "user":
            out.append({"role": "user", "content": _user_content(content, i, provider, documents)})
        elif role == "assistant":
            turn = _assistant(message, i, legacy)
            if turn is not None:
                out.append(turn)
        elif role in ("tool", "function"):
            cid = message.get("tool_call_id") if role == "tool" else legacy.get(str(message.get("name")), "")
            out.append({"role": "tool", "tool_call_id": cid, "content": _text(content)})
    return out


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content or "")


def _user_content(content: Any, index: int, provider: str, documents: list[JSONObject]) -> Any:
    if not isinstance(content, list):
        return str(content or "")
    items: list[JSONObject] = []
    before = len(documents)
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            items.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "image_url":
            image = {k: v for k, v in part["image_url"].items() if k in ("url", "detail") and v is not None}
            items.append({"type": "image_url", "image_url": image})
        elif kind == "file":
            documents.append(_document(part["file"], f"messages[{index}].content[{j}].file", provider))
        else:
            raise UnsupportedParameter(
                provider, f"messages[{index}].content[{j}]", f"Cohere takes text and images, not '{kind}' parts"
            )
    attached = [d["data"].get("title") or "document" for d in documents[before:]]
    if not items and attached:  # the message was only attachments, and Cohere refuses an empty user turn
        items.append({"type": "text", "text": "Attached: " + ", ".join(attached)})
    return items


def _document(spec: Mapping[str, Any], where: str, provider: str) -> JSONObject:
    """A text file becomes a Cohere document (cited by the model); binary files such as PDFs cannot be sent."""
    filename = str(spec.get("filename") or "")
    data = str(spec.get("file_data") or "")
    mime = spec.get("mime_type") or spec.get("mimeType") or mimetypes.guess_type(filename)[0] or ""
    if data.startswith("data:"):
        header, _, data = data[5:].partition(",")
        mime = header.split(";")[0] or mime
    text = None
    if data and str(mime).startswith(_TEXT_MIMES):
        try:
            text = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            text = None
    if text is None:
        raise UnsupportedParameter(
            provider, where, f"Cohere reads text documents only (got '{mime or 'unknown type'}'); send the text"
        )
    return {"data": {"title": filename, "text": text} if filename else {"text": text}}


def _assistant(message: Mapping[str, Any], index: int, legacy: dict[str, str]) -> JSONObject | None:
    text = _text(message.get("content")) or str(message.get("refusal") or "")
    reasoning = message.get("reasoning") or "".join(
        str(p.get("reasoning") or p.get("thinking") or "")
        for p in message.get("content") or ()
        if isinstance(p, dict) and p.get("type") in ("reasoning", "thinking")
    )
    calls = [
        {
            "id": c["id"],
            "type": "function",
            "function": {"name": c["function"]["name"], "arguments": c["function"].get("arguments") or "{}"},
        }
        for c in message.get("tool_calls") or ()
    ]
    if message.get("function_call"):
        fn = message["function_call"]
        legacy[fn["name"]] = f"legacy_{index}"
        calls.append(
            {
                "id": f"legacy_{index}",
                "type": "function",
                "function": {"name": fn["name"], "arguments": fn.get("arguments") or "{}"},
            }
        )
    turn: JSONObject = {"role": "assistant"}
    items: list[JSONObject] = [{"type": "thinking", "thinking": reasoning}] if reasoning else []
    if calls:
        turn["tool_calls"] = calls
        if text:
            turn["tool_plan"] = text
    elif text:
        items.append({"type": "text", "text": text})
    if items:
        turn["content"] = items
    return turn if len(turn) > 1 else None


@hookimpl
def register_providers(register: Register) -> None:
    register("cohere", CohereProvider, env_key="COHERE_API_KEY")

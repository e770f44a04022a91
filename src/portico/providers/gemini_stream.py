"""Gemini parts ↔ OpenAI message pieces, both ways, and everything Gemini sends back: completions, streams, errors.

`gemini` builds the request envelope (parameters, tools, schemas, turn structure); this module translates what
is inside turns. One translation of a candidate's parts serves completions and streams alike: text parts are
content, `thought: true` parts are `reasoning`, a `thoughtSignature` travels as `reasoning_signature` (or as the
tool call's `thought_signature` when it sat on a function-call part, where Gemini 3 validates it on the way
back), function calls become tool calls with synthesised ids. `model_parts` is the exact inverse, kept beside it
so signatures land back where they came from. `streamGenerateContent?alt=sse` has no end marker: a stream is
complete once every candidate reported a `finishReason`; one that stops before is an error.
"""

from __future__ import annotations

import base64
import mimetypes
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import orjson

from portico.core import errors
from portico.core.errors import ProviderError, UpstreamHTTPError, UpstreamProtocolError
from portico.core.types import ChatChunk, JSONObject, Usage
from portico.providers.base import decode_stream_event, parse_retry_after, tool_call_arguments
from portico.providers.transport import UpstreamEvent

_MEDIA_DEFAULTS = {"audio_url": "audio/mp3", "video_url": "video/mp4"}
FINISH_REASONS = {
    "STOP": "stop", "MAX_TOKENS": "length", "MALFORMED_FUNCTION_CALL": "error", "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    **dict.fromkeys(
        ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE", "IMAGE_SAFETY",
         "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"),
        "content_filter",
    ),
}  # fmt: skip
"""Gemini `finishReason` → OpenAI's enum (anything else, e.g. OTHER, is `stop`); `stop` with calls is `tool_calls`."""


def call_id(response_id: str, candidate: int, position: int) -> str:
    """Stable per response: the same upstream answer (or its cached replay) always yields the same ids."""
    return f"call_{response_id}_{candidate}_{position}"


def finish_reason(reason: Any, has_calls: bool) -> str:
    mapped = FINISH_REASONS.get(str(reason), "stop")
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def usage_from(meta: Any) -> JSONObject:
    """Thoughts are output the caller pays for, so they count in `completion_tokens` (and in reasoning_tokens)."""
    meta = meta if isinstance(meta, dict) else {}
    prompt = int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + thoughts
    cached = int(meta.get("cachedContentTokenCount") or 0)
    return Usage(prompt, completion, prompt + completion, cached, reasoning_tokens=thoughts).to_openai()


def logprobs_from(result: Any) -> JSONObject | None:
    if not isinstance(result, dict):
        return None
    tops = result.get("topCandidates") or []
    content = []
    for i, chosen in enumerate(result.get("chosenCandidates") or ()):
        alternatives = (tops[i].get("candidates") or []) if i < len(tops) else []
        entry = _logprob(chosen)
        entry["top_logprobs"] = [_logprob(alt) for alt in alternatives]
        content.append(entry)
    return {"content": content, "refusal": None}


def _logprob(candidate: JSONObject) -> JSONObject:
    token = str(candidate.get("token") or "")
    return {"token": token, "logprob": float(candidate.get("logProbability") or 0.0), "bytes": list(token.encode())}


class PartsDelta:
    """What one candidate's parts say, in OpenAI terms; `first_call` numbers calls across stream events."""

    def __init__(self, parts: Any, response_id: str, candidate: int, first_call: int = 0) -> None:
        self.text: list[str] = []
        self.thoughts: list[str] = []
        self.calls: list[JSONObject] = []
        self.signature: str | None = None
        text_signature: str | None = None
        for part in parts if isinstance(parts, list) else ():
            signature = part.get("thoughtSignature")
            if isinstance(part.get("functionCall"), dict):
                fc = part["functionCall"]
                function = {"name": fc.get("name") or "", "arguments": orjson.dumps(fc.get("args") or {}).decode()}
                cid = fc.get("id") or call_id(response_id, candidate, first_call + len(self.calls))
                call: JSONObject = {"id": cid, "type": "function", "function": function}
                if signature:
                    call["thought_signature"] = signature
                self.calls.append(call)
            elif part.get("thought"):
                if part.get("text"):
                    self.thoughts.append(part["text"])
                self.signature = self.signature or signature
            elif isinstance(part.get("text"), str):
                self.text.append(part["text"])
                text_signature = text_signature or signature
        self.signature = self.signature or text_signature

    def message(self) -> JSONObject:
        message: JSONObject = {"role": "assistant", "content": "".join(self.text) if self.text else None}
        if self.calls:
            message["tool_calls"] = self.calls
        if self.thoughts:
            message["reasoning"] = "".join(self.thoughts)
        if self.signature:
            message["reasoning_signature"] = self.signature
        return message

    def delta(self) -> JSONObject:
        delta: JSONObject = {}
        if self.thoughts:
            delta["reasoning"] = "".join(self.thoughts)
        if self.signature:
            delta["reasoning_signature"] = self.signature
        if self.text and "".join(self.text):
            delta["content"] = "".join(self.text)
        return delta


def model_parts(message: Mapping[str, Any], index: int) -> list[tuple[JSONObject, str | None]]:
    """An assistant message (as `PartsDelta.message` made it, or as a client wrote it) → model-turn parts.

    Each part comes with the tool-call id it carries (None for text and thoughts). Legacy `function_call` gets the
    id `legacy_<index>`. A `reasoning_signature` without reasoning text came from a text part: it goes back on the
    first part that can carry it.
    """
    parts: list[tuple[JSONObject, str | None]] = []
    signature = message.get("reasoning_signature")
    if message.get("reasoning"):
        parts.append((_thought(message["reasoning"], signature), None))
        signature = None
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append(({"text": content}, None))
    for part in content if isinstance(content, list) else ():
        kind = part.get("type")
        if kind in ("text", "refusal") and part.get(kind):
            parts.append(({"text": part[kind]}, None))
        elif kind in ("reasoning", "thinking") and part.get(kind):
            parts.append((_thought(part[kind], part.get("signature")), None))
    if not content and message.get("refusal"):
        parts.append(({"text": message["refusal"]}, None))
    calls = list(message.get("tool_calls") or ())
    if message.get("function_call"):
        calls.append({"id": f"legacy_{index}", "function": message["function_call"]})
    for j, call in enumerate(calls):
        fn = call["function"]
        args = tool_call_arguments(fn, f"messages[{index}].tool_calls[{j}].function.arguments", "Gemini")
        function_call: JSONObject = {"functionCall": {"name": fn["name"], "args": args}}
        if call.get("thought_signature"):
            function_call["thoughtSignature"] = call["thought_signature"]
        parts.append((function_call, call["id"]))
    if signature:
        for part, _ in parts:
            if not part.get("thought") and "thoughtSignature" not in part:
                part["thoughtSignature"] = signature
                break
    return parts


def _thought(text: str, signature: Any) -> JSONObject:
    part: JSONObject = {"text": text, "thought": True}
    if signature:
        part["thoughtSignature"] = signature
    return part


def texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [str(p.get("text") or "") for p in content or () if isinstance(p, dict) and p.get("type") == "text"]


def user_parts(content: Any, index: int, provider: str) -> list[JSONObject]:
    if not isinstance(content, list):
        return [{"text": content}] if content else []
    parts: list[JSONObject] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            parts.append(media_part(part["image_url"]["url"], "image/jpeg"))
        elif kind in ("audio_url", "video_url"):
            parts.append(media_part(str(part[kind].get("url")), _MEDIA_DEFAULTS[kind]))
        elif kind == "input_audio":
            audio = part["input_audio"]
            parts.append({"inlineData": {"mimeType": f"audio/{audio['format']}", "data": audio["data"]}})
        elif kind == "file":
            parts.append(_file_part(part["file"], f"messages[{index}].content[{j}].file", provider))
        else:
            raise errors.UnsupportedParameter(
                provider, f"messages[{index}].content[{j}]", f"'{kind}' parts have no equivalent"
            )
    return parts


def media_part(url: str, default_mime: str) -> JSONObject:
    """A data URI travels inline (base64); any other URL goes by reference (`fileData`), never fetched here."""
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        mime = header.split(";")[0] or default_mime
        if ";base64" not in header:  # percent-encoded text: Gemini takes base64 only
            data = base64.b64encode(unquote_to_bytes(data)).decode()
        return {"inlineData": {"mimeType": mime, "data": data}}
    mime = mimetypes.guess_type(urlsplit(url).path)[0] or default_mime
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _file_part(spec: Mapping[str, Any], where: str, provider: str) -> JSONObject:
    filename = str(spec.get("filename") or "")
    mime = spec.get("mime_type") or spec.get("mimeType") or mimetypes.guess_type(filename)[0] or "application/pdf"
    data = spec.get("file_data")
    if isinstance(data, str):
        if data.startswith("data:"):
            return media_part(data, str(mime))
        return {"inlineData": {"mimeType": mime, "data": data}}
    uri = spec.get("uri") or spec.get("file_id")
    if isinstance(uri, str) and "://" in uri:
        return {"fileData": {"mimeType": mime, "fileUri": uri}}
    raise errors.UnsupportedParameter(provider, where, "send file_data (base64 or a data URI) or a file URI")


def tool_response(content: Any) -> JSONObject:
    """A JSON-object result is the response itself; anything else is `{"output": text}` (Google's convention)."""
    text = "".join(texts(content)) if isinstance(content, list) else str(content or "")
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"output": text}


def completion_from_response(data: JSONObject, model: str, provider: str) -> JSONObject:
    if isinstance(data.get("error"), dict):
        raise stream_error(provider, data["error"])
    response_id = str(data.get("responseId") or uuid.uuid4().hex)
    candidates = data.get("candidates")
    choices: list[JSONObject] = []
    for n, candidate in enumerate(candidates if isinstance(candidates, list) else ()):
        index = int(candidate.get("index") or n)
        parts = PartsDelta((candidate.get("content") or {}).get("parts"), response_id, index)
        choices.append(
            {
                "index": index,
                "message": parts.message(),
                "finish_reason": finish_reason(candidate.get("finishReason"), bool(parts.calls)),
                "logprobs": logprobs_from(candidate.get("logprobsResult")),
            }
        )
    if not choices:
        if not (data.get("promptFeedback") or {}).get("blockReason"):
            raise UpstreamProtocolError(f"{provider} returned a response without candidates", provider=provider)
        message = {"role": "assistant", "content": None}
        choices.append({"index": 0, "message": message, "finish_reason": "content_filter", "logprobs": None})
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(data.get("modelVersion") or model),
        "choices": choices,
        "usage": usage_from(data.get("usageMetadata")),
    }


def stream_error(provider: str, error: Any) -> ProviderError:
    """An error object inside a 200 answer: keep Google's HTTP-like code when it has one (429 stays retryable)."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    message = f"{provider} reported an error mid-stream: {error.get('message') or error.get('status')}"
    code = error.get("code")
    if isinstance(code, int) and code >= 400:
        status = error.get("status")
        return UpstreamHTTPError(message, provider=provider, upstream_status=code, code=str(status) if status else None)
    return UpstreamProtocolError(message, provider=provider)


def error_from_body(provider: str, status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
    """Google's `{"error": {code, message, status, details}}` (a one-element array on non-SSE streams).

    The retry delay comes from `retry-after` or, as Google usually sends it, a `RetryInfo` detail; a bad API key
    is 400 `API_KEY_INVALID` at Google and becomes 401, which is what clients handle.
    """
    try:
        data: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    message, code, retry = body[:500].decode("utf-8", "replace").strip(), None, parse_retry_after(headers)
    if isinstance(error, dict):
        message, code = str(error.get("message") or message), error.get("status")
        for detail in error.get("details") or ():
            if not isinstance(detail, dict):
                continue
            if detail.get("reason") == "API_KEY_INVALID" and status == 400:
                status = 401
            delay = str(detail.get("retryDelay") or "")
            if retry is None and delay.endswith("s") and delay[:-1].replace(".", "", 1).isdigit():
                retry = float(delay[:-1])
    message = message or f"{provider} returned HTTP {status}"
    code = str(code) if code else None
    return UpstreamHTTPError(
        message, provider=provider, upstream_status=status, retry_after=retry, code=code, body=data
    )


class GeminiStreamParser:
    """Translates each SSE event as it arrives; remembers only ids, call counts and which candidates finished."""

    def __init__(self, provider: str, model: str) -> None:
        self._provider = provider
        self._model = model
        self._id: str | None = None
        self._created = int(time.time())
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}
        self._usage: Any = None

    def _chunk(self, choices: list[JSONObject], **extra: Any) -> ChatChunk:
        head = {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model}
        return ChatChunk({**head, "choices": choices, **extra})

    def feed(self, event: UpstreamEvent) -> list[ChatChunk]:
        data = decode_stream_event(event, self._provider)
        if data is None:
            return []
        if "error" in data:
            raise stream_error(self._provider, data["error"])
        self._id = self._id or str(data.get("responseId") or uuid.uuid4().hex)
        self._model = str(data.get("modelVersion") or self._model)
        if data.get("usageMetadata"):
            self._usage = data["usageMetadata"]
        out: list[ChatChunk] = []
        candidates = data.get("candidates") or []
        if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
            self._started.add(0)
            self._finished.add(0)
            blocked = {"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": "content_filter"}
            return [self._chunk([blocked])]
        for n, candidate in enumerate(candidates):
            index = int(candidate.get("index") or n)
            seen = self._calls.get(index, 0)
            parts = PartsDelta((candidate.get("content") or {}).get("parts"), self._id, index, seen)
            delta = parts.delta()
            if parts.calls:
                delta["tool_calls"] = [{"index": seen + i, **call} for i, call in enumerate(parts.calls)]
                self._calls[index] = seen + len(parts.calls)
            if index not in self._started:
                self._started.add(index)
                delta = {"role": "assistant", "content": delta.pop("content", ""), **delta}
            logprobs = logprobs_from(candidate.get("logprobsResult"))
            if delta or logprobs:
                choice: JSONObject = {"index": index, "delta": delta, "finish_reason": None}
                if logprobs:
                    choice["logprobs"] = logprobs
                out.append(self._chunk([choice]))
            if candidate.get("finishReason"):
                self._finished.add(index)
                reason = finish_reason(candidate["finishReason"], bool(self._calls.get(index)))
                out.append(self._chunk([{"index": index, "delta": {}, "finish_reason": reason}]))
        return out

    def close(self) -> list[ChatChunk]:
        if not self._finished or self._started - self._finished:
            raise UpstreamProtocolError(
                f"{self._provider} closed the stream before it finished", provider=self._provider
            )
        return [self._chunk([], usage=usage_from(self._usage))]

"""A mock AWS Bedrock Converse upstream: JSON for `converse`, binary AWS event-stream frames for `converse-stream`.

Strict where the real service is: the SigV4 signature is recomputed with the test secret (or a Bedrock API key is
checked), the body is checked against the Converse rules an adapter can break (alternating roles starting with
user, no blank text, tool blocks only with a toolConfig, tool results answering the previous turn's tool uses,
known top-level keys), errors carry `x-amzn-ErrorType` and `{"message"}`, and a bad credential is a 403
`UnrecognizedClientException` as on AWS. The reply follows the script in `tests/providers/contract.py`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import struct
import zlib
from typing import Any

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.upstreams.server import UpstreamState, read_json

ACCESS_KEY = "AKIDPORTICOTEST"
SECRET_KEY = "portico-test-secret"
REGION = "us-west-2"
API_KEY = "bedrock-api-key-test"
TOP_LEVEL = {
    "messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig", "additionalModelRequestFields",
    "promptVariables", "additionalModelResponseFieldPaths", "requestMetadata", "performanceConfig", "serviceTier",
    "outputConfig",
}  # fmt: skip
ERROR_TYPES = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$"
)


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude (lengths + CRC), string headers, payload, message CRC."""
    encoded = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack(">II", 16 + len(encoded) + len(payload), len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(name: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, json.dumps({**payload, "p": "abcdefghij"}).encode())  # AWS pads events with "p"


def exception(name: str, message: str) -> bytes:
    headers = {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, json.dumps({"message": message}).encode())


def error_response(status: int, message: str, retry_after: float | None = None) -> web.Response:
    kind = ERROR_TYPES.get(status, "InternalServerException")
    headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    headers["x-amzn-RequestId"] = "00000000-0000-0000-0000-000000000000"
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    wire_status = 403 if status == 401 else status  # AWS answers a bad credential with 403
    return web.json_response({"message": message}, status=wire_status, headers=headers)


def check_auth(request: web.Request, raw: bytes) -> str | None:
    """None if the request is signed with the test credentials (SigV4 recomputed) or bears the test API key."""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return None if auth == f"Bearer {API_KEY}" else "The API key is invalid."
    match = _AUTH.match(auth)
    if match is None:
        return "Missing or malformed SigV4 Authorization header."
    key, _, region, service, signed, signature = match.groups()
    if (key, region, service) != (ACCESS_KEY, REGION, "bedrock"):
        return f"Credential scope {key}/{region}/{service} is not {ACCESS_KEY}/{REGION}/bedrock."
    headers = {name: request.headers.get(name, "") for name in signed.split(";") if name != "host"}
    aws = AWSRequest(method=request.method, url=f"http://{request.host}{request.raw_path}", data=raw, headers=headers)
    aws.context["timestamp"] = request.headers.get("X-Amz-Date", "")
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "bedrock", REGION)
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    return None if hmac.compare_digest(expected, signature) else "The request signature we calculated does not match."


def validation_error(body: Any) -> str | None:
    """The Converse rules a translation can break; the real service answers these with ValidationException."""
    if not isinstance(body, dict):
        return "Malformed input request: body must be a JSON object"
    unknown = set(body) - TOP_LEVEL
    if unknown:
        return f"Malformed input request: extraneous key [{sorted(unknown)[0]}] is not permitted"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    has_tools = bool((body.get("toolConfig") or {}).get("tools"))
    previous_uses: set[str] = set()
    for i, message in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if message.get("role") != expected:
            return f"A conversation must alternate between user and assistant roles (messages.{i})"
        content = message.get("content")
        if not isinstance(content, list) or not content:
            return f"messages.{i}.content must be a non-empty list"
        uses: set[str] = set()
        for j, block in enumerate(content):
            if len(block) != 1:
                return f"messages.{i}.content.{j} must have exactly one member"
            if "text" in block and not str(block["text"]).strip():
                return f"The text field in the ContentBlock object at messages.{i}.content.{j} is blank."
            if ("toolUse" in block or "toolResult" in block) and not has_tools:
                return "The toolConfig field must be defined when using toolUse and toolResult content blocks."
            if "toolUse" in block:
                use = block["toolUse"]
                if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", use.get("toolUseId", "")):
                    return f"messages.{i}.content.{j}.toolUse.toolUseId is invalid"
                if not isinstance(use.get("input"), dict):
                    return f"messages.{i}.content.{j}.toolUse.input must be an object"
                uses.add(use["toolUseId"])
            if "toolResult" in block and block["toolResult"].get("toolUseId") not in previous_uses:
                return f"messages.{i}.content.{j}.toolResult answers no toolUse of the previous turn"
        previous_uses = uses
    for block in body.get("system") or []:
        if "text" in block and not str(block["text"]).strip():
            return "The text field in the system block is blank."
    return None


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [str(b["text"]) for b in blocks if "text" in b]


def reply(model: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str, dict[str, int]]:
    """(content blocks, stopReason, usage) following the contract script."""
    messages = body["messages"]
    results = [
        " ".join(_texts(b["toolResult"].get("content") or []))
        for m in messages
        for b in m["content"]
        if "toolResult" in b
    ]
    last_user = next(m for m in reversed(messages) if m["role"] == "user")
    fields = body.get("additionalModelRequestFields") or {}
    blocks: list[dict[str, Any]] = []
    if (fields.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
        blocks.append({"reasoningContent": {"reasoningText": {"text": "Let me think.", "signature": "sig-1"}}})
    tools = (body.get("toolConfig") or {}).get("tools") or []
    if results:
        text, stop = f"Tool result: {results[-1]}", "end_turn"
    elif tools:
        name = tools[0]["toolSpec"]["name"]
        blocks.append({"toolUse": {"toolUseId": "tooluse_mock_1", "name": name, "input": {"city": "Paris"}}})
        text, stop = "", "tool_use"
    else:
        text, stop = f"Echo from {model}: {' '.join(_texts(last_user['content']))}", "end_turn"
    if text:
        blocks.append({"text": text})
    words = sum(len(t.split()) for m in messages for t in _texts(m["content"]))
    usage = {"inputTokens": max(words, 1), "outputTokens": max(len(text.split()), 1)}
    cached = any("cachePoint" in b for m in messages for b in m["content"])
    if cached:
        usage |= {"cacheReadInputTokens": 3, "cacheWriteInputTokens": 2}
    usage["totalTokens"] = sum(usage.values())
    return blocks, stop, usage


def stream_frames(blocks: list[dict[str, Any]], stop: str, usage: dict[str, int]) -> list[bytes]:
    frames = [event("messageStart", {"role": "assistant"})]
    for index, block in enumerate(blocks):
        if "reasoningContent" in block:
            reasoning = block["reasoningContent"]["reasoningText"]
            for piece in ({"text": reasoning["text"]}, {"signature": reasoning["signature"]}):
                frames.append(
                    event("contentBlockDelta", {"delta": {"reasoningContent": piece}, "contentBlockIndex": index})
                )
        elif "toolUse" in block:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            frames.append(event("contentBlockStart", {"start": start, "contentBlockIndex": index}))
            arguments = json.dumps(use["input"])
            for piece in (arguments[:9], arguments[9:]):
                frames.append(
                    event("contentBlockDelta", {"delta": {"toolUse": {"input": piece}}, "contentBlockIndex": index})
                )
        else:
            for position, word in enumerate(block["text"].split(" ")):
                piece = word if position == 0 else " " + word
                frames.append(event("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": index}))
        frames.append(event("contentBlockStop", {"contentBlockIndex": index}))
    frames.append(event("messageStop", {"stopReason": stop}))
    frames.append(event("metadata", {"usage": usage, "metrics": {"latencyMs": 12}}))
    return frames


def install(app: web.Application, state: UpstreamState) -> None:
    async def converse(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = await read_json(request)
        state.record(request, body)
        model = request.match_info["model"]
        denied = check_auth(request, raw)
        if denied is not None:
            return error_response(401, denied)
        failure = state.take_failure(model)
        if failure is not None:
            return error_response(failure.status, failure.message, failure.retry_after)
        problem = validation_error(body)
        if problem is not None:
            return error_response(400, problem)
        if (simulated := await state.simulate(model, error_response, request)) is not None:
            return simulated
        mode, arg = state.mode(model)
        blocks, stop, usage = reply(model, body)
        if not request.path.endswith("/converse-stream"):
            output = {"message": {"role": "assistant", "content": blocks}}
            return web.json_response(
                {"output": output, "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 12}}
            )
        response = web.StreamResponse(headers={"content-type": "application/vnd.amazon.eventstream"})
        await response.prepare(request)
        if mode == "slow_first_chunk":
            await asyncio.sleep(arg)
        if mode == "throttle_stream":
            await response.write(exception("throttlingException", "Too many tokens, please wait."))
            return response
        for sent, data in enumerate(stream_frames(blocks, stop, usage)):
            if mode == "cut_after" and sent >= arg:
                return response  # the connection ends without messageStop/metadata
            if mode == "inband_error" and sent >= arg:
                await response.write(exception("modelStreamErrorException", "overloaded mid-stream"))
                return response
            await response.write(data)
        await response.write_eof()
        return response

    app.router.add_post("/model/{model}/converse", converse)
    app.router.add_post("/model/{model}/converse-stream", converse)

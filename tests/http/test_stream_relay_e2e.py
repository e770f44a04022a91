"""The stream relay as clients meet it: an OpenAI-compatible upstream's events reach the client as the upstream's
own bytes (raw `http.client` and the `openai` SDK's byte stream), however the upstream's writes are cut, while the
gateway still catches an in-band error after content, accounts the final usage in the call log, strips usage for
a client that did not ask, and a cache replay tells the same answer.

The upstream here plays a scripted byte body (`SCRIPTS`), written in the pieces a test chooses, with a pause
between pieces so that each arrives in its own network read."""

from __future__ import annotations

import asyncio
import http.client
import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from aiohttp import web

from tests.conftest import KEY, Stack, stack_settings
from tests.gateway_server import GatewayThread
from tests.storage.test_call_log_e2e import wait_for_record
from tests.upstreams.server import UpstreamState, UpstreamThread

MODEL = "relayup/gpt-relay"
SCRIPTS: dict[str, list[bytes]] = {}
"""The body the mock upstream sends for a request whose last message is the key: one write per piece."""
SEEN: list[dict[str, Any]] = []


def chunk(content: str | None = None, *, role: bool = False, finish: str | None = None, usage: Any = ...) -> bytes:
    """One event as OpenAI writes it (compact JSON, `"usage":null` on every chunk once usage is asked)."""
    delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
    if content is not None:
        delta["content"] = content
    event: dict[str, Any] = {
        "id": "chatcmpl-relay",
        "object": "chat.completion.chunk",
        "created": 1731000000,
        "model": "gpt-relay-2024",
        "system_fingerprint": "fp_relay",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not ...:
        event["usage"] = usage
    return b"data: " + json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def usage_chunk(prompt: int = 11, completion: int = 7) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    event = {
        "id": "chatcmpl-relay",
        "object": "chat.completion.chunk",
        "created": 1731000000,
        "model": "gpt-relay-2024",
        "system_fingerprint": "fp_relay",
        "choices": [],
        "usage": usage,
    }
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"
WORDS = ["Hello", " there", ",", " how", " are", " you", " doing", " today", "? ", "Ünïcödé ✓"]


def openai_body(null_usage: bool = True, words: list[str] = WORDS) -> list[bytes]:
    """Events of a whole answer, `[DONE]` included."""
    u: Any = None if null_usage else ...
    events = [chunk(role=True, usage=u)]
    events += [chunk(w, usage=u) for w in words]
    events += [chunk(finish="stop", usage=u), usage_chunk(), DONE]
    return events


def install(app: web.Application, state: UpstreamState) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        SEEN.append(body)
        pieces = SCRIPTS[body["messages"][-1]["content"]]
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for i, piece in enumerate(pieces):
            if i:
                await asyncio.sleep(0.03)  # each piece in its own read
            await response.write(piece)
        await response.write_eof()
        return response

    app.router.add_post("/relay/v1/chat/completions", chat)


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with UpstreamThread([install]) as upstream:
        url = f"sqlite:///{tmp_path_factory.mktemp('relaylog') / 'portico.db'}"
        settings = stack_settings(
            upstream.url,
            providers={"relayup": {"type": "openai", "api_key": "sk-up", "base_url": f"{upstream.url}/relay/v1"}},
            storage={"url": url},
            logging={"request_log": True, "queue_size": 1000},
            cache={"url": "memory://"},
        )
        with GatewayThread(settings) as gateway:
            yield Stack(gateway, upstream)


def script(pieces: list[bytes]) -> str:
    key = uuid.uuid4().hex
    SCRIPTS[key] = pieces
    return key


def raw_stream(stack: Stack, key: str, path: str = "/v1/chat/completions", **extra: Any) -> tuple[int, bytes, str]:
    """Status, whole body and request id over a plain `http.client` connection."""
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": key}], **extra}
    conn = http.client.HTTPConnection("127.0.0.1", stack.gateway.port, timeout=10)
    try:
        headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
        conn.request("POST", path, json.dumps(body).encode(), headers)
        answer = conn.getresponse()
        return answer.status, answer.read(), answer.getheader("x-request-id") or ""
    finally:
        conn.close()


def cuts(events: list[bytes]) -> dict[str, list[bytes]]:
    """The same body written whole, event by event, and cut mid-event (inside the JSON and inside `\\n\\n`)."""
    whole = b"".join(events)
    third = len(whole) // 3
    return {
        "whole": [whole],
        "per-event": events,
        "mid-event": [whole[:third], whole[third : 2 * third], whole[2 * third :]],
        "mid-blank-line": [e for ev in events for e in (ev[:-1], ev[-1:])],
    }


@pytest.mark.parametrize("cut", ["whole", "per-event", "mid-event", "mid-blank-line"])
def test_the_client_gets_the_upstreams_bytes(relay: Stack, cut: str) -> None:
    events = openai_body()
    status, body, _ = raw_stream(relay, script(cuts(events)[cut]), stream_options={"include_usage": True})
    assert status == 200
    assert body == b"".join(events)


def test_the_openai_sdk_reads_the_upstreams_bytes_and_chunks(relay: Stack) -> None:
    events = openai_body()
    client = openai.OpenAI(base_url=relay.gateway.url + "/v1", api_key=KEY, max_retries=0)
    messages: Any = [{"role": "user", "content": script(cuts(events)["per-event"])}]
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
    ) as response:
        assert b"".join(response.iter_bytes()) == b"".join(events)
    messages = [{"role": "user", "content": script(cuts(events)["mid-event"])}]
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(WORDS)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 18
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize("null_usage", [True, False])
def test_usage_the_client_did_not_ask_for_is_cut_and_still_accounted(relay: Stack, null_usage: bool) -> None:
    """The gateway asks the upstream for usage; the client that did not sees neither the usage chunk nor the
    `"usage":null` keys (as the event-by-event path sent it), and the call log has the tokens."""
    events = openai_body(null_usage)
    status, body, request_id = raw_stream(relay, script(cuts(events)["per-event"]))
    assert SEEN[-1]["stream_options"] == {"include_usage": True}
    expected = b"".join(e.replace(b',"usage":null', b"") for e in events if e != usage_chunk())
    assert status == 200 and body == expected
    record = wait_for_record(relay, request_id)
    assert (record["prompt_tokens"], record["completion_tokens"], record["total_tokens"]) == (11, 7, 18)
    assert record["stream"] is True and record["partial"] is False
    assert record["ttft_ms"] is not None and 0 < record["ttft_ms"] <= record["latency_ms"]


def test_the_relay_and_the_event_by_event_path_send_the_same_bytes(relay: Stack) -> None:
    """A cached request goes event by event (the cache stage reads every chunk): its body is the relay's."""
    events = openai_body()
    _, relayed, _ = raw_stream(relay, script(cuts(events)["whole"]))
    _, decoded, _ = raw_stream(relay, script(cuts(events)["whole"]), cache={"type": "exact_match", "ttl": 60})
    assert relayed == decoded


def test_an_inband_error_after_content_ends_the_stream_with_an_error_event(relay: Stack) -> None:
    events = openai_body()[:4]
    error = b'data: {"error":{"message":"overloaded mid-stream","type":"server_error"}}\n\n'
    status, body, request_id = raw_stream(relay, script([b"".join(events), error]))
    sent = b"".join(e.replace(b',"usage":null', b"") for e in events)
    assert status == 200 and body.startswith(sent)
    frames = body[len(sent) :].split(b"\n\n")
    assert frames[-2:] == [b"data: [DONE]", b""] and len(frames) == 3  # one error event, then the end
    assert "overloaded mid-stream" in json.loads(frames[0][6:])["error"]["message"]
    record = wait_for_record(relay, request_id)
    assert record["partial"] is True


def test_an_inband_error_in_the_same_read_as_content_is_caught_too(relay: Stack) -> None:
    events = openai_body()[:5]
    error = b'data: {"error":{"message":"boom in the block","type":"server_error"}}\n\n'
    status, body, _ = raw_stream(relay, script([b"".join(events) + error]), stream_options={"include_usage": True})
    # The read that brought the first content also brought the error: the stream never committed (as before the
    # relay), so the client gets an error answer, not a stream.
    assert status == 502 and "boom in the block" in json.loads(body)["error"]["message"]


def test_a_stream_cut_after_content_is_partial_not_a_clean_end(relay: Stack) -> None:
    events = openai_body()[:6]
    status, body, request_id = raw_stream(relay, script([events[0] + events[1], b"".join(events[2:])]))
    assert status == 200
    frames = [f for f in body.split(b"\n\n") if f]
    assert frames[-1] == b"data: [DONE]" and b'"error"' in frames[-2]
    assert wait_for_record(relay, request_id)["partial"] is True


def test_a_cache_replay_tells_the_relayed_answer(relay: Stack) -> None:
    client = openai.OpenAI(base_url=relay.gateway.url + "/v2/router", api_key=KEY, max_retries=0)
    key = script(openai_body())
    messages: Any = [{"role": "user", "content": key}]

    def text(**extra: Any) -> tuple[str, Any]:
        with client.chat.completions.with_streaming_response.create(
            model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}, **extra
        ) as response:
            chunks = list(response.parse())
            cache = response.headers.get("x-portico-cache")
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), (cache, chunks[-1].usage)

    relayed, (cache, usage) = text()
    assert cache is None and usage.total_tokens == 18
    seen = len(SEEN)
    filled, (cache, _) = text(extra_body={"cache": {"type": "exact_match", "ttl": 60}})
    assert cache == "MISS"
    replayed, (cache, usage) = text(extra_body={"cache": {"type": "exact_match", "ttl": 60}})
    assert cache == "HIT" and len(SEEN) == seen + 1  # the replay reached no upstream
    assert relayed == filled == replayed == "".join(WORDS)
    assert usage.total_tokens == 18


def test_odd_framing_falls_back_to_event_by_event(relay: Stack) -> None:
    """CRLF line ends, comments and named events are not relayed as they are: they are read event by event,
    as before (the client gets clean `data:` frames)."""
    events = openai_body()
    crlf = b"".join(events).replace(b"\n", b"\r\n")
    commented = b": keep-alive\n\n" + b"".join(events[:3]) + b"event: message\n" + b"".join(events[3:])
    for pieces in ([crlf], [crlf[:100], crlf[100:]], [commented]):
        status, body, _ = raw_stream(relay, script(pieces), stream_options={"include_usage": True})
        assert status == 200 and body == b"".join(events)


def test_whatever_an_upstream_sends_after_its_done_is_dropped_and_the_stream_still_accounted(relay: Stack) -> None:
    """The read that brings `[DONE]` ends the client's response in the same write; a misbehaving upstream's later
    events never reach the client (the response is complete), the call is recorded whole, and the connection
    the client used serves its next request."""
    events = openai_body()
    late = chunk(" after the end")
    status, body, request_id = raw_stream(
        relay, script([b"".join(events), late]), stream_options={"include_usage": True}
    )
    assert status == 200 and body == b"".join(events)
    record = wait_for_record(relay, request_id)
    assert record["partial"] is False and record["total_tokens"] == 18
    status, body, _ = raw_stream(relay, script([b"".join(events)]), stream_options={"include_usage": True})
    assert status == 200 and body == b"".join(events)

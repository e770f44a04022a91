"""Request validation: the router schema's constraints, endpoint rules and deprecated spellings."""

from __future__ import annotations

from typing import Any

import pytest

from portico.core.errors import ValidationFailed
from portico.core.types import RoutingPlan, Target
from portico.wire.convert import build_request, check_rules, validate_body
from portico.wire.portkey import read_portkey_headers

BASE: dict[str, Any] = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def errors_for(body: dict[str, Any], dialect: str = "orq") -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationFailed) as info:
        check_rules(validate_body(body), dialect)  # type: ignore[arg-type]
    return [(e.loc, e.type) for e in info.value.errors]


@pytest.mark.parametrize(
    ("patch", "loc"),
    [
        ({"temperature": 2.5}, ("body", "temperature")),
        ({"top_p": 1.5}, ("body", "top_p")),
        ({"top_logprobs": 21, "logprobs": True}, ("body", "top_logprobs")),
        ({"n": 0}, ("body", "n")),
        ({"max_completion_tokens": 0}, ("body", "max_completion_tokens")),
        ({"retry": {"count": 6}}, ("body", "retry", "count")),
        ({"retry": {"count": 2, "on_codes": []}}, ("body", "retry", "on_codes")),
        ({"retry": {"on_codes": [99]}}, ("body", "retry", "on_codes", 0)),
        ({"cache": {"type": "exact_match", "ttl": 0}}, ("body", "cache", "ttl")),
        ({"cache": {"type": "semantic"}}, ("body", "cache", "type")),
        (
            {"load_balancer": {"type": "weight_based", "models": [{"model": "a/b", "weight": 2}]}},
            ("body", "load_balancer", "models", 0, "weight"),
        ),
        ({"timeout": {"call_timeout": 0}}, ("body", "timeout", "call_timeout")),
        ({"reasoning_effort": "extreme"}, ("body", "reasoning_effort")),
        ({"audio": {"voice": "robot", "format": "wav"}}, ("body", "audio", "voice")),
        ({"guardrails": [{"id": "x", "execute_on": "both"}]}, ("body", "guardrails", 0, "execute_on")),
        ({"orq": {"prompt": {"id": "p", "version": "v2"}}}, ("body", "orq", "prompt", "version")),
        ({"orq": {"prompt": {"version": "latest"}}}, ("body", "orq", "prompt", "id")),
        (
            {"orq": {"knowledge_bases": [{"knowledge_id": "k", "top_k": 101}]}},
            ("body", "orq", "knowledge_bases", 0, "top_k"),
        ),
        (
            {"orq": {"knowledge_bases": [{"knowledge_id": "k", "threshold": 1.5}]}},
            ("body", "orq", "knowledge_bases", 0, "threshold"),
        ),
        ({"messages": [{"role": "robot", "content": "x"}]}, ("body", "messages", 0, "role")),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "bad name!"}}},
            ("body", "response_format", "json_schema", "name"),
        ),
        ({"tool_choice": "sometimes"}, ("body", "tool_choice")),
    ],
)
def test_schema_violations_name_the_field(patch: dict[str, Any], loc: tuple[Any, ...]) -> None:
    found = errors_for({**BASE, **patch})
    assert found[0][0] == loc


def test_missing_required_fields() -> None:
    assert errors_for({"messages": BASE["messages"]})[0] == (("body", "model"), "missing")
    assert errors_for({"model": "openai/gpt-4o"})[0] == (("body", "messages"), "missing")


@pytest.mark.parametrize(
    ("patch", "loc"),
    [
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, ("body", "metadata")),
        ({"metadata": {"k" * 65: "v"}}, ("body", "metadata", "k" * 65)),
        ({"metadata": {"k": "v" * 513}}, ("body", "metadata", "k")),
        ({"metadata": {"k": 1}}, ("body", "metadata", "k")),
        ({"stop": ["a", "b", "c", "d", "e"]}, ("body", "stop")),
        ({"top_logprobs": 3}, ("body", "top_logprobs")),
        ({"thinking": {"type": "enabled"}}, ("body", "thinking", "budget_tokens")),
        (
            {"messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]},
            ("body", "messages", 0, "content", 0, "file"),
        ),
    ],
)
def test_router_rules(patch: dict[str, Any], loc: tuple[Any, ...]) -> None:
    assert loc in [e[0] for e in errors_for({**BASE, **patch}, "orq")]


def test_v1_rules_differ() -> None:
    assert errors_for({**BASE, "n": 129}, "openai")[0][0] == ("body", "n")
    assert errors_for({**BASE, "presence_penalty": 3}, "openai")[0][0] == ("body", "presence_penalty")
    tool_msg = {"role": "tool", "content": "x", "tool_call_id": None}
    assert errors_for({**BASE, "messages": [tool_msg]}, "openai")[0][0] == ("body", "messages", 0, "tool_call_id")
    # what /v1 allows that /v2 refuses, and the reverse
    check_rules(validate_body({**BASE, "stop": ["1", "2", "3", "4", "5"], "metadata": {"k": 1}}), "openai")
    check_rules(validate_body({**BASE, "presence_penalty": 123, "messages": [tool_msg]}), "orq")


def test_accepts_every_documented_shape() -> None:
    body = {
        **BASE,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}]},
            {"role": "developer", "content": "d"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA", "filename": "a.pdf"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "reasoning", "reasoning": "hmm", "signature": "sig"},
                    {"type": "redacted_reasoning", "data": "xx"},
                    {"type": "text", "text": "ok"},
                ],
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                        "thought_signature": "ts",
                    }
                ],
            },
            {
                "role": "tool",
                "content": "42",
                "tool_call_id": "c1",
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            },
            {"role": "function", "name": "f", "content": None},
            {"role": "assistant", "content": None},
        ],
        "tools": [{"function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": {"function": {"name": "f"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}}},
        "thinking": {"type": "enabled", "budget_tokens": 2048, "thinking_level": "medium"},
        "stop": "END",
        "seed": 7,
        "top_k": 40,
        "modalities": ["text"],
        "min_p": 0.1,
        "unknown_field": {"kept": True},
    }
    check_rules(validate_body(body), "orq")


def test_orq_container_is_normalised_with_top_level_winning() -> None:
    body = {
        **BASE,
        "retry": {"count": 2},
        "orq": {
            "retry": {"count": 5, "on_codes": [500]},
            "fallbacks": [{"model": "anthropic/claude"}],
            "load_balancer": [{"model": "openai/a", "weight": 0.7}, {"model": "openai/b", "weight": 0.3}],
            "contact": {"id": "c1", "metadata": [{"a": 1}, {"b": 2}]},
            "inputs": [{"key": "name", "value": "Ann", "is_pii": True}, {"key": "x", "value": "orq"}],
            "timeout": {"call_timeout": 1500},
            "cache": {"type": "exact_match"},
        },
        "variables": {"x": "top"},
        "metadata": {"team": "a"},
        "name": "trace-name",
    }
    wire = validate_body(body)
    check_rules(wire, "orq")
    headers = read_portkey_headers({"x-portkey-metadata": '{"team": "h", "env": "prod"}', "x-portkey-trace-id": "t1"})
    req = build_request(body, wire, dialect="orq", client_key="k", portkey=headers)
    assert "orq" not in req.body and "retry" not in req.body and "metadata" not in req.body
    plan = req.routing
    assert isinstance(plan, RoutingPlan) and plan.mode == "fallback"
    assert plan.retry is not None and plan.retry.count == 2 and plan.retry.on_codes == {429}
    assert plan.timeout_ms == 1500
    primary = plan.targets[0]
    assert isinstance(primary, RoutingPlan) and primary.mode == "loadbalance"
    assert [(t.model, t.weight) for t in primary.targets if isinstance(t, Target)] == [
        ("openai/a", 0.7),
        ("openai/b", 0.3),
    ]
    assert plan.targets[1] == Target(model="anthropic/claude")
    assert req.variables == {"name": "Ann", "x": "top"}  # `is_pii` is accepted; nothing records variables
    assert req.trace.identity == {"id": "c1", "metadata": {"a": 1, "b": 2}}
    assert req.trace.metadata == {"team": "a", "env": "prod"}
    assert req.trace.trace_id == "t1" and "name" not in req.body  # `name` is accepted and not kept
    assert req.cache is not None and req.cache.ttl_seconds == 1800


def test_unknown_fields_are_kept_verbatim() -> None:
    body = {
        **BASE,
        "repetition_penalty": 1.1,
        "chat_template_kwargs": {"enable_thinking": False},
        "structured_outputs": {"choice": ["a", "b"]},
        "stream_options": {"include_usage": True},
    }
    req = build_request(body, validate_body(body), dialect="openai", client_key=None)
    assert req.body["repetition_penalty"] == 1.1
    assert req.body["chat_template_kwargs"] == {"enable_thinking": False}
    assert req.body["structured_outputs"] == {"choice": ["a", "b"]}
    assert "stream_options" not in req.body  # ignored without stream (AMB-28)
    assert req.routing is None and req.cache is None


@pytest.mark.parametrize(
    ("dialect", "options", "expected"),
    [
        ("openai", {}, True),
        ("orq", {}, False),
        ("orq", {"include_usage": True}, True),
        ("openai", {"include_usage": False}, False),
    ],
)
def test_include_usage_defaults_per_dialect(dialect: str, options: dict[str, Any], expected: bool) -> None:
    body = {**BASE, "stream": True, "stream_options": options}
    req = build_request(body, validate_body(body), dialect=dialect, client_key=None)  # type: ignore[arg-type]
    assert req.include_usage is expected


def test_bad_portkey_metadata_header_is_422() -> None:
    with pytest.raises(ValidationFailed) as info:
        read_portkey_headers({"x-portkey-metadata": "{not json"})
    assert info.value.errors[0].loc == ("header", "x-portkey-metadata")


@pytest.mark.parametrize("dialect", ["openai", "orq"])
@pytest.mark.parametrize(
    "body",
    [
        {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "top_k": 5},
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True, "stream_options": {}},
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": False, "stream_options": {}},
    ],
)
def test_a_plain_request_is_built_the_same_on_the_short_path(body: dict[str, Any], dialect: str) -> None:
    """Requests naming no gateway feature skip the normalisation; with (empty) Portkey headers they take it.
    Both must give the same request."""
    import copy

    from portico.wire.portkey import PortkeyHeaders

    short = build_request(copy.deepcopy(body), validate_body(body), dialect=dialect, client_key="k")  # type: ignore[arg-type]
    full = build_request(
        copy.deepcopy(body),
        validate_body(body),
        dialect=dialect,
        client_key="k",
        portkey=PortkeyHeaders(),  # type: ignore[arg-type]
    )
    assert short == full
    assert "model" not in short.body and "stream" not in short.body

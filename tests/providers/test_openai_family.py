"""Each OpenAI-compatible flavour over HTTP: the upstream receives only what its real API accepts, the dropped keys
are listed in `x-portico-dropped-params`, and what would change the answer is refused with a 400 naming it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from portico.providers.openai_family import FLAVORS
from tests.conftest import KEY, Response, http
from tests.gateway_server import GatewayThread
from tests.upstreams import openai as openai_upstream
from tests.upstreams.server import UpstreamThread

HI: Any = [{"role": "user", "content": "hi"}]
HOSTED = (
    "openai",
    "groq",
    "mistral",
    "deepseek",
    "together",
    "fireworks",
    "xai",
    "perplexity",
    "cerebras",
    "openrouter",
)
SELF_HOSTED = ("vllm", "ollama", "lmstudio", "openailike")
EXTRAS = {"frobnicate": 1, "skip_special_tokens": False, "min_p": 0.05, "top_k": 20}
"""An unknown field and vLLM-only sampling fields; some services have min_p / top_k of their own."""
NATIVE_SAMPLING: dict[str, set[str]] = {
    "together": {"min_p", "top_k"},
    "fireworks": {"min_p", "top_k"},
    "openrouter": {"min_p", "top_k"},
    "perplexity": {"top_k"},
}


class Env:
    def __init__(self, gateway: GatewayThread, upstream: UpstreamThread) -> None:
        self.gateway, self.upstream = gateway, upstream

    def post(self, body: Any, headers: dict[str, str] | None = None) -> Response:
        sent = {"content-type": "application/json", "authorization": f"Bearer {KEY}", **(headers or {})}
        return http("POST", self.gateway.url + "/v1/chat/completions", json.dumps(body).encode(), sent)

    def sent(self) -> dict[str, Any]:
        """The body the upstream received last."""
        body: dict[str, Any] = self.upstream.state.requests[-1]["body"]
        return body


@pytest.fixture(scope="module")
def module_env() -> Iterator[Env]:
    with UpstreamThread([openai_upstream.install]) as upstream:
        root = upstream.url
        providers: dict[str, Any] = {
            kind: {"type": kind, "api_key": f"sk-{kind}", "base_url": f"{root}/v1"} for kind in HOSTED + SELF_HOSTED
        }
        providers["perplexity"]["base_url"] = root  # Perplexity's API has no /v1 prefix
        settings = {"auth": {"keys": [KEY]}, "providers": providers, "logging": {"request_log": False}}
        with GatewayThread(settings) as gateway:
            yield Env(gateway, upstream)


@pytest.fixture
def env(module_env: Env) -> Iterator[Env]:
    module_env.upstream.state.reset()
    yield module_env
    module_env.upstream.state.reset()


def _refused(response: Response, param: str, provider: str) -> dict[str, Any]:
    assert response.status == 400, response.body
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "unsupported_parameter" and error["param"] == param
    assert f"'{param}'" in error["message"] and f"'{provider}'" in error["message"]
    return error


@pytest.mark.parametrize("kind", HOSTED)
def test_a_flavour_receives_only_what_its_api_accepts(env: Env, kind: str) -> None:
    answer = env.post({"model": f"{kind}/m-1", "messages": HI, "temperature": 0.5, **EXTRAS})
    assert answer.status == 200, answer.body
    kept = NATIVE_SAMPLING.get(kind, set())
    assert env.sent() == {"messages": HI, "temperature": 0.5, "model": "m-1", **{k: EXTRAS[k] for k in kept}}
    assert answer.headers["x-portico-dropped-params"] == ",".join(sorted(set(EXTRAS) - kept))


@pytest.mark.parametrize("kind", HOSTED)
def test_guided_decoding_is_refused_naming_it_and_the_provider(env: Env, kind: str) -> None:
    for param, value in (("guided_json", {"type": "object"}), ("guided_choice", ["a", "b"])):
        _refused(env.post({"model": f"{kind}/m-1", "messages": HI, param: value}), param, kind)
    structured = {"model": f"{kind}/m-1", "messages": HI, "structured_outputs": {"regex": "[a-z]+"}}
    _refused(env.post(structured), "structured_outputs", kind)
    assert env.upstream.state.requests == []


@pytest.mark.parametrize("kind", SELF_HOSTED)
def test_self_hosted_servers_get_every_key_verbatim(env: Env, kind: str) -> None:
    body = {"messages": HI, "guided_json": {"type": "object"}, "n": 2, **EXTRAS}
    answer = env.post({"model": f"{kind}/m-1", **body})
    assert answer.status == 200, answer.body
    assert env.sent() == {**body, "model": "m-1"}
    assert "x-portico-dropped-params" not in answer.headers


def test_the_openai_sdk_gets_a_400_naming_guided_json(env: Env) -> None:
    client = openai.OpenAI(base_url=env.gateway.url + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="openai/gpt-4o", messages=HI, extra_body={"guided_json": {"type": "object"}}
        )
    assert "guided_json" in str(info.value) and "'openai'" in str(info.value)
    reply = client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=HI, extra_body={"top_k": 5}
    )
    assert reply.headers["x-portico-dropped-params"] == "top_k"
    assert env.sent() == {"messages": HI, "model": "gpt-4o"}


def test_a_request_of_accepted_keys_only_is_sent_as_is(env: Env) -> None:
    body = {"messages": HI, "temperature": 0.2, "seed": 7, "n": 2, "response_format": {"type": "json_object"}}
    answer = env.post({"model": "openai/gpt-4o", **body})
    assert answer.status == 200 and "x-portico-dropped-params" not in answer.headers
    assert env.sent() == {**body, "model": "gpt-4o"}


def test_n_above_one_is_refused_where_the_service_returns_one_choice(env: Env) -> None:
    for kind in ("groq", "deepseek", "perplexity", "cerebras", "openrouter"):
        _refused(env.post({"model": f"{kind}/m", "messages": HI, "n": 2}), "n", kind)
    one = env.post({"model": "groq/m", "messages": HI, "n": 1})
    assert one.status == 200 and one.headers["x-portico-dropped-params"] == "n" and "n" not in env.sent()
    assert env.post({"model": "mistral/m", "messages": HI, "n": 2}).status == 200 and env.sent()["n"] == 2


def test_response_formats_the_service_lacks_are_refused(env: Env) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    deepseek = env.post({"model": "deepseek/m", "messages": HI, "response_format": schema})
    assert "json_schema" in _refused(deepseek, "response_format", "deepseek")["message"]
    tagged = {"type": "structural_tag", "structures": [], "triggers": ["<x>"]}
    for kind in HOSTED:  # vLLM's structural tags exist nowhere else
        _refused(env.post({"model": f"{kind}/m", "messages": HI, "response_format": tagged}), "response_format", kind)
    assert env.post({"model": "vllm/m", "messages": HI, "response_format": tagged}).status == 200
    json_mode = env.post({"model": "deepseek/m", "messages": HI, "response_format": {"type": "json_object"}})
    assert json_mode.status == 200 and env.sent()["response_format"] == {"type": "json_object"}
    assert env.post({"model": "groq/m", "messages": HI, "response_format": schema}).status == 200


def test_logprobs_and_tools_are_refused_where_they_do_not_exist_and_dropped_when_off(env: Env) -> None:
    _refused(env.post({"model": "groq/m", "messages": HI, "logprobs": True}), "logprobs", "groq")
    both = {"logprobs": True, "top_logprobs": 3}
    assert _refused(env.post({"model": "mistral/m", "messages": HI, **both}), "logprobs", "mistral")
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    _refused(env.post({"model": "perplexity/sonar", "messages": HI, "tools": [tool]}), "tools", "perplexity")
    off = env.post({"model": "groq/m", "messages": HI, "logprobs": False, "tool_choice": "auto"})
    assert off.status == 200 and off.headers["x-portico-dropped-params"] == "logprobs"
    quiet = env.post({"model": "perplexity/sonar", "messages": HI, "tool_choice": "none", "seed": 1})
    assert quiet.status == 200 and quiet.headers["x-portico-dropped-params"] == "seed,tool_choice"


def test_mistral_gets_its_own_names_for_seed_and_max_completion_tokens(env: Env) -> None:
    answer = env.post({"model": "mistral/m", "messages": HI, "seed": 3, "max_completion_tokens": 9, "user": "u"})
    assert answer.status == 200 and answer.headers["x-portico-dropped-params"] == "user"
    assert env.sent() == {"messages": HI, "random_seed": 3, "max_tokens": 9, "model": "m"}


def test_streams_are_fitted_the_same_way(env: Env) -> None:
    answer = env.post({"model": "openai/gpt-4o", "messages": HI, "stream": True, "top_k": 3})
    assert answer.status == 200 and answer.headers["x-portico-dropped-params"] == "top_k"
    assert b"data: [DONE]" in answer.body
    assert env.sent() == {"messages": HI, "model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True}}
    refused = env.post({"model": "openai/gpt-4o", "messages": HI, "stream": True, "guided_regex": "[a-z]+"})
    _refused(refused, "guided_regex", "openai")


def test_every_hosted_flavour_has_an_accepted_list_and_self_hosted_none() -> None:
    for kind in HOSTED:
        accepts = FLAVORS[kind].accepts
        assert accepts is not None and {"messages", "temperature", "max_tokens"} <= accepts.params, kind
        assert not {"guided_json", "structured_outputs", "skip_special_tokens"} & accepts.params, kind
    assert all(FLAVORS[kind].accepts is None for kind in SELF_HOSTED)

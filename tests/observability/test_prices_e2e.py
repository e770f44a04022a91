"""The shipped price table as a client meets it: a call to a model of each newly priced provider (xAI, DeepSeek,
Groq, Mistral, OpenAI's gpt-5 family and o3, OpenAI embeddings) answers with `x-portico-cost-usd` equal to the
table's price of the usage the upstream reported; a model the table leaves out is unpriced, never guessed."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from portico.core.types import Usage
from portico.observability.cost import cost_of
from portico.observability.prices import BUILTIN, SOURCES
from tests.conftest import KEY, stack_settings
from tests.gateway_server import GatewayThread
from tests.upstreams import embeddings as embeddings_upstream
from tests.upstreams import openai as openai_upstream
from tests.upstreams.server import UpstreamThread

PROVIDERS = ("xai", "deepseek", "groq", "mistral")


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    with UpstreamThread([openai_upstream.install, embeddings_upstream.install_openai]) as upstream:
        settings = stack_settings(upstream.url)
        for name in PROVIDERS:  # each its own adapter type (the entry's name), all served by the mock
            settings["providers"][name] = {"api_key": f"key-{name}", "base_url": f"{upstream.url}/v1"}
        with GatewayThread(settings) as gateway:
            yield gateway.url


CASES = [
    ("xai", "grok-4-1-fast-reasoning"),
    ("xai", "grok-3-mini-latest"),  # an alias bills as its model
    ("deepseek", "deepseek-chat"),
    ("groq", "openai/gpt-oss-120b"),  # a model id with a slash, under its provider
    ("mistral", "mistral-medium-latest"),
    ("openai", "gpt-5-mini"),
    ("openai", "o3"),
]


@pytest.mark.parametrize(("provider", "model"), CASES)
def test_a_newly_priced_model_answers_with_its_cost(gateway_url: str, provider: str, model: str) -> None:
    client = openai.OpenAI(base_url=gateway_url + "/v1", api_key=KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=f"{provider}/{model}", messages=[{"role": "user", "content": "what does this cost"}]
    )
    usage = raw.parse().usage
    assert usage is not None
    table = BUILTIN[provider]
    price = table.get(model) or table[model.removesuffix("-latest")]
    expected = cost_of(price, Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens))
    assert expected > 0 and SOURCES[provider].url.startswith("https://")
    assert float(raw.headers["x-portico-cost-usd"]) == pytest.approx(expected, abs=1e-8)


def test_an_embedding_bills_its_input_tokens(gateway_url: str) -> None:
    client = openai.OpenAI(base_url=gateway_url + "/v1", api_key=KEY, max_retries=0)
    raw = client.embeddings.with_raw_response.create(
        model="openai/text-embedding-3-small", input=["four words of input", "and three more"]
    )
    tokens = raw.parse().usage.prompt_tokens
    assert tokens == 7
    assert float(raw.headers["x-portico-cost-usd"]) == pytest.approx(tokens * 0.02 / 1_000_000, abs=1e-10)


@pytest.mark.parametrize(("provider", "model"), [("xai", "grok-4-0709"), ("mistral", "mistral-large-latest")])
def test_a_model_the_table_leaves_out_is_unpriced(gateway_url: str, provider: str, model: str) -> None:
    client = openai.OpenAI(base_url=gateway_url + "/v1", api_key=KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=f"{provider}/{model}", messages=[{"role": "user", "content": "what does this cost"}]
    )
    assert raw.parse().usage is not None and "x-portico-cost-usd" not in raw.headers

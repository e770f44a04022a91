"""Azure OpenAI as a contract case: deployment URLs, `api-key` auth and `api-version`, OpenAI's body."""

from __future__ import annotations

from tests.providers.cases_openai import CASE as OPENAI
from tests.providers.contract import ContractCase
from tests.upstreams import azure as upstream

CASE = ContractCase(
    name="azure",
    install=upstream.install,
    provider_config=lambda url: {"api_key": upstream.API_KEY, "base_url": url},
    model="my-gpt4o",
    inspect=OPENAI.inspect,
    upstream_model=lambda request, model: request["path"].split("/")[3],
)

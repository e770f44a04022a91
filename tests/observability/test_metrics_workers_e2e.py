"""`/metrics` of a gateway served by two workers (`portico serve --workers 2`), parsed with the Prometheus client's
parser: whichever worker answers the scrape, the totals are the gateway's and add up to the requests sent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import http
from tests.http.test_workers_sync_e2e import ADMIN, HI, Served, config_text
from tests.upstreams.server import UpstreamThread

SENT = 40


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamThread]:
    from tests.upstreams import openai

    with UpstreamThread([openai.install]) as thread:
        yield thread


def totals(url: str) -> dict[str, float]:
    """Sums over every label set of the families the test checks (one scrape, on a fresh connection)."""
    response = http("GET", f"{url}/metrics", timeout=5)
    assert response.status == 200
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            if sample.name in ("portico_requests_total", "portico_request_latency_seconds_count"):
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
            elif sample.name == "portico_tokens_total" and sample.labels.get("kind") == "prompt":
                sums["prompt_tokens"] = sums.get("prompt_tokens", 0.0) + sample.value
    return sums


def test_two_workers_report_the_gateways_totals(
    tmp_path: Path, upstream: UpstreamThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    monkeypatch.setenv("PORTICO_METRICS_DIR", str(shared))  # `portico serve` makes one itself when not given
    served = Served(tmp_path, "metrics", config_text(upstream.url, f"sqlite:///{tmp_path}/portico.db"), workers=2)
    try:
        served.wait_healthy()
        body = json.dumps({"model": "openai/gpt-4o", "messages": HI}).encode()
        prompt = 0
        for _ in range(SENT):  # each on a fresh connection: either worker may answer
            answer = http("POST", f"{served.url}/v1/chat/completions", body, ADMIN, timeout=5)
            assert answer.status == 200
            prompt += answer.json()["usage"]["prompt_tokens"]
        expected = {
            "portico_requests_total": SENT,
            "portico_request_latency_seconds_count": SENT,
            "prompt_tokens": prompt,
        }
        deadline = time.monotonic() + 10  # each worker writes its counts every 0.5 s: wait for both to have
        while not all(totals(served.url) == expected for _ in range(4)) and time.monotonic() < deadline:
            time.sleep(0.2)
        scrapes = [totals(served.url) for _ in range(12)]  # fresh connections: both workers answer some
        assert all(scrape == expected for scrape in scrapes), scrapes
        assert len(list(shared.glob("worker-*.json"))) == 2  # each worker writes its counts there
    finally:
        served.stop()

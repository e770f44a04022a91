"""`/v1/models`, `/metrics`, `/openapi.json`, `/docs` and `/redoc` are open by default; `auth.keyed_routes`
closes the ones an operator names (with a gateway key set), in the gateway's 401 shape. `/health*` stays open."""

from __future__ import annotations

from tests.conftest import http
from tests.gateway_server import GatewayThread


def test_keyed_routes_take_the_gateway_key_and_the_others_stay_open() -> None:
    settings = {"auth": {"keys": ["sk-k"], "keyed_routes": ["/v1/models", "/metrics"]}}
    with GatewayThread(settings) as gw:
        for path in ("/v1/models", "/metrics"):
            refused = http("GET", f"{gw.url}{path}")
            assert refused.status == 401 and refused.json()["error"]["type"] == "authentication_error", path
            assert refused.headers["www-authenticate"] == "Bearer" and refused.headers["x-request-id"]
            assert http("GET", f"{gw.url}{path}", headers={"authorization": "Bearer sk-k"}).status == 200
            assert http("GET", f"{gw.url}{path}", headers={"authorization": "Bearer wrong"}).status == 401
        for path in ("/openapi.json", "/health", "/health/live"):
            assert http("GET", f"{gw.url}{path}").status == 200, path


def test_an_open_gateway_has_no_key_to_ask_for() -> None:
    with GatewayThread({"auth": {"keyed_routes": ["/metrics"]}}) as gw:
        assert http("GET", f"{gw.url}/metrics").status == 200

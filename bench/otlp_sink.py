"""A local OTLP/HTTP sink for the tracing benchmark: accepts `POST /v1/traces`, counts the bytes, answers 200.

python bench/otlp_sink.py [port]      # 4318 by default; GET /stats prints what it received
"""

from __future__ import annotations

import sys

from aiohttp import web

received = {"requests": 0, "bytes": 0}


async def traces(request: web.Request) -> web.Response:
    body = await request.read()
    received["requests"] += 1
    received["bytes"] += len(body)
    return web.Response(body=b"", content_type="application/x-protobuf")


async def stats(_request: web.Request) -> web.Response:
    return web.json_response(received)


def main() -> None:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 4318, print=None)


if __name__ == "__main__":
    main()

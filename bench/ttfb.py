"""Time to first byte of a streamed chat completion, direct to the upstream and through Portico, at concurrency 1.

One keep-alive connection per target, 400 sequential streamed requests (the first 50 are warm-up), median of the
time from sending a request to receiving the first bytes of its response. Run it with the shared harness's nginx
mock on 127.0.0.1:9100 and a gateway started with `BENCH_UPSTREAM=http://127.0.0.1:9100/stream/v1`:
    python bench/ttfb.py [gateway_port]
"""

from __future__ import annotations

import socket
import statistics
import sys
import time

BODY = (
    b'{"model":"%s","messages":[{"role":"user","content":"Hello"}],"max_tokens":256,'
    b'"stream":true,"stream_options":{"include_usage":true}}'
)


def ttfb_ms(port: int, path: str, model: bytes, auth: str, requests: int = 400, warmup: int = 50) -> float:
    body = BODY % model
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: {auth}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    request = head.encode() + body
    samples: list[float] = []
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(requests):
            started = time.perf_counter()
            conn.sendall(request)
            data = conn.recv(65536)
            samples.append(time.perf_counter() - started)
            while not data.endswith(b"data: [DONE]\n\n") and not data.endswith(b"0\r\n\r\n"):
                data += conn.recv(65536)
    return statistics.median(samples[warmup:]) * 1000


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8090
    direct = ttfb_ms(9100, "/stream/v1/chat/completions", b"gpt-4o", "Bearer sk-upstream")
    gateway = ttfb_ms(port, "/v1/chat/completions", b"openai/gpt-4o", "Bearer sk-bench")
    print(f"TTFB p50: direct {direct:.3f} ms, gateway {gateway:.3f} ms, added {gateway - direct:.3f} ms")


if __name__ == "__main__":
    main()

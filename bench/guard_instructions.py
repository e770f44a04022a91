"""Instructions per router request with guardrails, beside the same request without any (bench/instructions.py's
method and harness, whose nginx mock must be up on 127.0.0.1:9100):
    python bench/guard_instructions.py [--requests 1000] [--stream]

Variants: `none` (no `guardrails` field), `pii` (`orq_pii_detection` on the input: a scan, the request passes),
`regex+redact` (a stored `regex_deny` guardrail plus `portico_pii_redaction`: the input is rewritten, the answer
restored). The body's text holds no PII, so every variant reaches the mock and answers 200.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import instructions  # the shared measuring code beside this file (bench/ is not a package)

PLAIN = instructions.BODY
GUARDS = {
    "none": "",
    "pii": ',"guardrails":[{"id":"orq_pii_detection","execute_on":"input"}]',
    "regex+redact": ',"guardrails":[{"id":"bench-regex","execute_on":"input"},'
    '{"id":"portico_pii_redaction","execute_on":"input"}]',
}


async def store_regex_guardrail(port: int) -> None:
    spec = {"checks": [{"kind": "regex_deny", "params": {"pattern": r"(?i)ignore (all|previous) instructions"}}]}
    headers = {"Authorization": "Bearer sk-bench"}
    async with aiohttp.ClientSession() as session:  # noqa: TID251 (the load client)
        url = f"http://127.0.0.1:{port}/v1/admin/guardrails/bench-regex"
        async with session.put(url, json=spec, headers=headers) as resp:
            resp.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="*", help=f"default: all of {', '.join(GUARDS)}")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="1: no batching of requests per loop turn, which varies with load"
    )
    parser.add_argument("--config", type=Path, default=instructions.HARNESS / "configs" / "portico.yaml")
    args = parser.parse_args()
    if unknown := set(args.variants) - set(GUARDS):
        parser.error(f"unknown variants {sorted(unknown)}")
    workdir = Path(tempfile.mkdtemp(prefix="portico-guard-callgrind-"))
    original_wait = instructions.wait_ready

    async def ready_with_guardrail(port: int, within_s: float = 300.0) -> None:
        await original_wait(port, within_s)
        await store_regex_guardrail(port)

    instructions.wait_ready = ready_with_guardrail  # type: ignore[assignment]
    original_drive = instructions.drive

    async def drive(url: str, body: bytes, requests: int, concurrency: int, stream: bool) -> None:
        await original_drive(url, body, requests, args.concurrency, stream)

    instructions.drive = drive  # type: ignore[assignment]
    results: list[tuple[str, float]] = []  # a variant may be named twice (none first and last: the noise)
    for variant in args.variants or list(GUARDS):
        instructions.BODY = PLAIN.replace("%s}", GUARDS[variant] + "%s}")
        results.append((variant, instructions.measure("router", args.requests, args.stream, workdir, args.config)))
    nones = [n for v, n in results if v == "none"]
    base = sum(nones) / len(nones) if nones else None
    for variant, per_request in results:
        line = f"{variant:13} {per_request / 1000:8.1f} k instructions/request"
        if base and variant != "none":
            line += f"  ({(per_request - base) / 1000:+.1f} k, {per_request / base:.3f}x none)"
        print(line, flush=True)


if __name__ == "__main__":
    main()

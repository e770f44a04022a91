"""Instructions per request of the guardrail stages alone: the staged path in one process (mock provider, no network,
no timers), so the count repeats exactly, unlike the HTTP one (bench/guard_instructions.py), whose background work
(call-log batches, probes) moves it by ±100 k per request between runs on this shared machine.

Each variant runs under callgrind twice, with N1 and N2 requests; (total2 − total1) / (N2 − N1) is the cost of one
request, start-up cancelled out. Needs valgrind:
    python bench/guard_instructions_inproc.py [none pii regex+redact]
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. Answer concisely and accurately."},
    {"role": "user", "content": "Hello! How are you today? Please reply in one short sentence."},
]
GUARDS: dict[str, tuple[tuple[str, str], ...]] = {
    "none": (),
    "pii": (("orq_pii_detection", "input"),),
    "regex+redact": (("bench-regex", "input"), ("portico_pii_redaction", "input")),
}
COUNTS = (100, 1100)


async def serve(variant: str, n: int) -> None:
    from portico.core.types import ChatRequest
    from portico.guardrails.custom import build_custom
    from portico.pipeline.gateway import Gateway
    from portico.pipeline.guarding import GuardrailCatalog
    from portico.pipeline.health import LocalHealth
    from portico.pipeline.routing import Router
    from portico.providers.registry import ProviderRegistry
    from portico.providers.transport import Transport

    deny = {"kind": "regex_deny", "params": {"pattern": r"(?i)ignore (all|previous) instructions"}}
    spec: dict[str, Any] = {"checks": [deny]}
    regex = build_custom(spec)
    catalog = GuardrailCatalog(lambda g: regex if g == "bench-regex" else None)
    router = Router(LocalHealth(failure_threshold=3, cooldown_seconds=30))
    gateway = Gateway(ProviderRegistry.build({}), Transport(), router, None, guardrails=catalog)
    request = ChatRequest(model="mock/echo", body={"messages": MESSAGES, "max_tokens": 256})
    request = replace(request, guardrails=GUARDS[variant])
    for _ in range(n):
        await gateway.chat(request)


def total(variant: str, n: int, workdir: Path) -> int:
    out = workdir / f"callgrind.{variant}.{n}"
    command = [sys.executable, __file__, "--serve", variant, str(n)]
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command], check=True, capture_output=True
    )
    return sum(int(m) for m in re.findall(rb"^totals: (\d+)", out.read_bytes(), re.M))


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        asyncio.run(serve(sys.argv[2], int(sys.argv[3])))
        return
    variants = sys.argv[1:] or list(GUARDS)
    workdir = Path(tempfile.mkdtemp(prefix="portico-guard-inproc-"))
    per = {v: (total(v, COUNTS[1], workdir) - total(v, COUNTS[0], workdir)) / (COUNTS[1] - COUNTS[0]) for v in variants}
    for variant, count in per.items():
        line = f"{variant:13} {count / 1000:7.1f} k instructions/request"
        if "none" in per and variant != "none":
            line += f"  ({(count - per['none']) / 1000:+.1f} k)"
        print(line, flush=True)


if __name__ == "__main__":
    main()

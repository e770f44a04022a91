"""Where a gateway request's time goes, by Python function: Portico under cProfile, driven like `instructions.py`.

Instruction counts (`instructions.py`) say how much a request costs; this says where. The gateway runs under
`cProfile` against a mock upstream (the shared harness's on 127.0.0.1:9100, or bench/long_stream's on 9101 for the
500-chunk answer); after a warm-up the profile is reset, `--requests` requests are sent by 16 clients, and the
functions with the most own time are printed, per request (and per chunk with `--chunks`):

    python bench/profile_stream.py --stream                      # the harness's 20-chunk stream
    python bench/profile_stream.py --long --upstream-port 9101   # 500 chunks: the per-chunk cost
    python bench/profile_stream.py                               # the JSON path

cProfile slows Python code about twice and C code not at all, so read the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from instructions import BODY, HARNESS, drive, wait_ready  # noqa: E402 - the same load as the counts

PROFILER = """
import asyncio, cProfile, signal, sys
import uvicorn
from portico.cli import main
profile = cProfile.Profile()
started = uvicorn.Server.startup

def dump():
    profile.disable()
    profile.dump_stats(sys.argv[1])

async def startup(self, sockets=None):  # the loop's own signal handlers: uvloop runs no others while idle
    await started(self, sockets)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, profile.enable)
    loop.add_signal_handler(signal.SIGUSR2, dump)

uvicorn.Server.startup = startup
sys.exit(main(sys.argv[2:]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--long", action="store_true", help="bench/long_stream's 500-chunk answer")
    parser.add_argument("--upstream-port", type=int, default=9100)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--path", default="/v1/chat/completions")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "8097")))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--config", type=Path, default=HARNESS / "configs" / "portico.yaml")
    parser.add_argument("--by-module", action="store_true", help="own time summed by package (portico.* by module)")
    args = parser.parse_args()
    stream = args.stream or args.long
    prefix = "long/" if args.long else "stream/" if stream else ""
    out = Path(tempfile.mkdtemp(prefix="portico-profile-")) / "gateway.prof"
    env = dict(os.environ, BENCH_UPSTREAM=f"http://127.0.0.1:{args.upstream_port}/{prefix}v1")
    command = [sys.executable, "-c", PROFILER, str(out), "serve", "--config", str(args.config)]
    command += ["--host", "127.0.0.1", "--port", str(args.port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{args.port}{args.path}"
        extra = ',"stream":true,"stream_options":{"include_usage":true}' if stream else ""
        body = (BODY % ("openai/gpt-4o", extra)).encode()
        asyncio.run(wait_ready(args.port))
        asyncio.run(drive(url, body, 300, 16, stream))
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.2)  # noqa: TID251 (the load client: no event loop here)
        asyncio.run(drive(url, body, args.requests, 16, stream))
        proc.send_signal(signal.SIGUSR2)
        for _ in range(100):
            if out.exists() and out.stat().st_size:
                break
            time.sleep(0.1)  # noqa: TID251
        time.sleep(0.5)  # noqa: TID251
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    stats = pstats.Stats(str(out))
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"{total / args.requests * 1e6:.1f} µs of profiled time per request ({args.requests} requests)")
    if args.by_module:
        print_by_module(stats.stats, total, args.requests)  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    print(f"{'own µs/req':>10} {'share':>6} {'calls/req':>9}  function")
    for (file, line, name), (_, calls, own, _cum, _) in rows[: args.top]:
        where = f"{Path(file).name}:{line}" if line else file
        print(f"{own / args.requests * 1e6:10.2f} {own / total:6.1%} {calls / args.requests:9.1f}  {name} ({where})")


def module_of(file: str) -> str:
    """`portico.pipeline.attempts` for Portico's files, the top package for a library's, `~` for C functions."""
    if file == "~":
        return "(C builtins)"
    parts = Path(file).with_suffix("").parts
    if "portico" in parts:
        return ".".join(parts[parts.index("portico") :])
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    return Path(file).parent.name + "/" + Path(file).stem if "asyncio" in parts else Path(file).stem


Entries = dict[tuple[str, int, str], tuple[int, int, float, float, object]]


def print_by_module(entries: Entries, total: float, n: int) -> None:
    """Own time per request summed by `module_of`: which layer the time is spent in, not which function."""
    sums: dict[str, float] = {}
    for (file, _line, _name), (_, _calls, own, _cum, _) in entries.items():
        key = module_of(file)
        sums[key] = sums.get(key, 0.0) + own
    print(f"{'own µs/req':>10} {'share':>6}  module")
    for key, own in sorted(sums.items(), key=lambda kv: kv[1], reverse=True)[:40]:
        print(f"{own / n * 1e6:10.2f} {own / total:6.1%}  {key}")
    print()


if __name__ == "__main__":
    main()

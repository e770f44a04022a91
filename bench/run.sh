#!/usr/bin/env bash
# Portico's overhead benchmark: the shared harness (wrk → gateway pinned to one core → nginx mock upstream), with
# Portico side by side with the bare reference proxy and Portkey in one run. Results land in $BENCH_RESULTS.
#   bash bench/run.sh              # non-streaming and streaming, c=1,16,64
# Needs ../shared/bench (run `./run.sh setup` there once) and `portico` installed (make run / make test do it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
harness="${BENCH_HARNESS:-$here/../../shared/bench}"
export PORTICO_BIN="${PORTICO_BIN:-$(command -v portico || echo "$here/../.venv/bin/portico")}"
export BENCH_RESULTS="${BENCH_RESULTS:-/tmp/portico-bench}"
cd "$harness"
./run.sh direct portkey ref-asgi-aiohttp portico "$@"
./run.sh --stream direct portkey ref-asgi-aiohttp portico "$@"

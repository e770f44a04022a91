"""The access log never blocks the event loop: a stderr pipe nobody reads gets whole lines until it is full, and
the rest is dropped and counted. Odd paths stay valid JSON."""

from __future__ import annotations

import json
import os
import time

from portico.observability.access_log import AccessLog


def test_a_full_pipe_drops_lines_instead_of_blocking() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as stream, os.fdopen(read_end, "rb") as reader:
        log = AccessLog(stream)
        started = time.monotonic()
        for i in range(20_000):  # ~4 MB of lines into a 64 KiB pipe
            log.write("POST", "/v1/chat/completions", 200, 1.5, f"{i:032x}")
        log.flush()
        assert time.monotonic() - started < 5
        assert 0 < log.dropped < 20_000
        os.set_blocking(reader.fileno(), False)
        data = reader.read()
    lines = data.splitlines()
    assert len(lines) == 20_000 - log.dropped
    assert [json.loads(line)["request_id"] for line in lines[:2]] == [f"{0:032x}", f"{1:032x}"]


def test_paths_with_quotes_and_controls_stay_valid_json() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as stream, os.fdopen(read_end, "rb") as reader:
        log = AccessLog(stream)
        log.write("GET", '/a"b\\c\n\u00e9', 404, 0.25, "id-1")
        log.flush()
        line = json.loads(reader.readline())
    assert line["path"] == '/a"b\\c\n\u00e9' and line["status"] == 404 and line["latency_ms"] == 0.25
    assert line["logger"] == "portico.access" and line["level"] == "INFO" and line["ts"].endswith("+00:00")

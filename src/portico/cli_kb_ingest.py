"""`portico kb ingest KEY PATH…`: upload files to a knowledge base, then follow their background ingest with a
progress bar on stderr until every one is completed or failed.

Directories are read recursively and only files of a supported type are taken (hidden ones skipped); a file named
on the command line is always sent, so the gateway's 415 tells the operator why it is refused. A file the gateway
refuses (415, empty, too large) or whose ingest fails is named at the end and makes the exit code 1; the others
are still indexed. Re-running the same command is harmless: the gateway answers a known file (the same
bytes) with the datasource it already has, so nothing is stored twice.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from portico.admin_client import EXIT_REFUSED, AdminError

if TYPE_CHECKING:
    from portico.admin_client import AdminClient

MIME = {"txt": "text/plain", "md": "text/markdown", "html": "text/html", "pdf": "application/pdf"}
POLL_SECONDS = 0.5
BAR_WIDTH = 30


def ingest(
    client: AdminClient,
    kb_key: str,
    paths: Sequence[str],
    metadata: dict[str, Any] | None,
    *,
    wait: bool = True,
    timeout: float = 3600,
    err: TextIO | None = None,
) -> int:
    err = err or sys.stderr
    files = collect_files(paths)
    base = f"/v1/admin/knowledge/{quote(kb_key, safe='')}/datasources"
    failed: dict[str, str] = {}
    pending: dict[str, Path] = {}
    for number, path in enumerate(files, 1):
        print(f"\ruploading {number}/{len(files)} files", end="", file=err, flush=True)
        try:
            source = upload(client, base, path, metadata)
        except AdminError as exc:
            if exc.status is None or exc.status in {401, 403}:
                print(file=err)  # the error message starts its own line, not after the counter
                raise
            failed[str(path)] = exc.message
            continue
        pending[str(source["id"])] = path
    print(file=err)
    states = follow(client, base, pending, len(files), err, timeout) if wait and pending else {}
    for source_id, path in pending.items():
        state = states.get(source_id, {})
        if wait and state.get("status") != "completed":
            failed[str(path)] = str(state.get("error") or f"still {state.get('status', 'queued')} after {timeout:g}s")
    chunks = sum(int(state.get("chunks_total") or 0) for state in states.values() if state.get("status") == "completed")
    print(
        f"{kb_key}: {len(files) - len(failed)} of {len(files)} files "
        + (f"indexed ({chunks} chunks)" if wait else "uploaded")
    )
    for path_name, why in failed.items():
        print(f"failed: {path_name}: {why}", file=err)
    return EXIT_REFUSED if failed else 0


def collect_files(paths: Sequence[str]) -> list[Path]:
    """The files to upload, in a stable order; an absent path or nothing to upload is an error before any upload."""
    from portico.knowledge.parsing import FILE_TYPES

    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and p.suffix.lower().lstrip(".") in FILE_TYPES
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise AdminError(f"{raw}: no such file or directory", EXIT_REFUSED)
    unique = list(dict.fromkeys(found))
    if not unique:
        supported = ", ".join(sorted({f".{ext}" for ext in FILE_TYPES}))
        raise AdminError(f"no files to ingest in {', '.join(paths)} (supported: {supported})", EXIT_REFUSED)
    return unique


def upload(client: AdminClient, base: str, path: Path, metadata: dict[str, Any] | None) -> dict[str, Any]:
    """One multipart/form-data POST: `file` (+ `metadata` as a JSON string field)."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise AdminError(f"cannot read {path}: {exc.strerror}", EXIT_REFUSED, status=0) from None
    boundary = f"portico-{uuid.uuid4().hex}"
    mime = MIME.get(_file_type(path), "application/octet-stream")
    parts = []
    if metadata:
        parts.append(_field(boundary, 'name="metadata"', "application/json", json.dumps(metadata).encode()))
    disposition = f'name="file"; filename="{_quoted(path.name)}"'
    parts.append(_field(boundary, disposition, mime, content))
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    status, _, answer = client.call("POST", base, raw=(f"multipart/form-data; boundary={boundary}", body))
    if status == 404:
        message = answer.get("error", {}).get("message") if isinstance(answer, dict) else None
        raise AdminError(message or "knowledge base not found", EXIT_REFUSED)
    if not isinstance(answer, dict) or "id" not in answer:
        raise AdminError(f"unexpected answer to the upload of {path} (HTTP {status})", EXIT_REFUSED, status=status)
    return answer


def follow(
    client: AdminClient, base: str, pending: dict[str, Path], files: int, err: TextIO, timeout: float
) -> dict[str, dict[str, Any]]:
    """Poll the datasources until each is completed or failed (or `timeout`), redrawing the bar when it changes."""
    states: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    shown = ""
    while True:
        states.update(_states(client, base, set(pending) - _finished(states)))
        bar = progress_bar(states, files)
        if bar != shown:
            print(f"\r{bar}", end="", file=err, flush=True)
            shown = bar
        if _finished(states) >= set(pending) or time.monotonic() >= deadline:
            print(file=err)
            return states
        threading.Event().wait(POLL_SECONDS)  # a plain sleep; the CLI has no event loop


def progress_bar(states: dict[str, dict[str, Any]], files: int) -> str:
    """`[#####.........] 12/40 chunks  3/5 files`; the chunk total grows as each file is parsed."""
    total = sum(int(s.get("chunks_total") or 0) for s in states.values())
    done = sum(int(s.get("chunks_done") or 0) for s in states.values())
    finished = sum(1 for s in states.values() if s.get("status") in {"completed", "failed"})
    finished += files - len(states)  # files the gateway refused at upload count as finished
    fraction = done / total if total else finished / files if files else 1.0
    filled = min(BAR_WIDTH, round(fraction * BAR_WIDTH))
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} chunks  {finished}/{files} files"


def _states(client: AdminClient, base: str, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """One list call for all; a datasource the list leaves out (paging) is fetched on its own."""
    _, _, answer = client.call("GET", base)
    listed = answer.get("data", []) if isinstance(answer, dict) else []
    found = {str(s["id"]): s for s in listed if isinstance(s, dict) and str(s.get("id")) in wanted}
    for source_id in wanted - set(found):
        status, _, single = client.call("GET", f"{base}/{quote(source_id, safe='')}")
        gone = {"status": "failed", "error": "the datasource was deleted"}
        found[source_id] = single if status == 200 and isinstance(single, dict) else gone
    return found


def _finished(states: dict[str, dict[str, Any]]) -> set[str]:
    return {key for key, state in states.items() if state.get("status") in {"completed", "failed"}}


def _file_type(path: Path) -> str:
    from portico.knowledge.parsing import FILE_TYPES

    return FILE_TYPES.get(path.suffix.lower().lstrip("."), "")


def _field(boundary: str, disposition: str, content_type: str, content: bytes) -> bytes:
    head = f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\nContent-Type: {content_type}\r\n\r\n"
    return head.encode() + content + b"\r\n"


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")

"""What every worker of one server knows about itself, so that `/health` answered by any worker tells the whole
server's truth (issue 17: with two workers it showed the answering worker's recorder only).

Each worker writes its recorder statistics and readiness beside its metrics file (`PORTICO_METRICS_DIR`) in the
same background flush, and reads the others' there; the file I/O runs in a thread, so `/health` itself only reads
what the last flush gathered and never touches the disk. A worker that stopped writing (it exited or hangs) is
reported as `stale` after `stale_after` seconds, and counts against the server's health while its file says it
still had records to write; the file of a worker that shut down cleanly is removed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

_SUMMED = ("queue_depth", "written", "dropped", "failed", "stalls", "spooled", "spool_records", "spool_bytes")
_WORST = ("oldest_unwritten_seconds", "outage_seconds")


class WorkerHealth:
    def __init__(self, share_dir: str | os.PathLike[str] | None, *, stale_after: float = 5.0) -> None:
        self.share_dir = Path(share_dir) if share_dir else None
        self.stale_after = stale_after
        self.pid = os.getpid()
        self._own_file = self.share_dir / f"health-{self.pid}.json" if self.share_dir else None
        self._others: list[dict[str, Any]] = []

    @property
    def shared(self) -> bool:
        return self._own_file is not None

    def exchange(self, own: Mapping[str, Any]) -> None:
        """Publish this worker's state and gather the others' (blocking file I/O: call it from a thread)."""
        if self.share_dir is None or self._own_file is None:
            return
        staged = self._own_file.with_suffix(".tmp")
        staged.write_bytes(orjson.dumps({"pid": self.pid, "at": time.time(), **own}))
        staged.replace(self._own_file)
        now, others = time.time(), []
        for path in self.share_dir.glob("health-*.json"):
            if path == self._own_file:
                continue
            try:
                state = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue  # vanished between the listing and the read: that worker just exited
            if isinstance(state, dict):
                state["stale"] = now - float(state.get("at") or 0) > self.stale_after
                others.append(state)
        self._others = sorted(others, key=lambda state: int(state.get("pid") or 0))

    def withdraw(self) -> None:
        """A clean shutdown: this worker's state leaves the others' reports."""
        if self._own_file is not None:
            self._own_file.unlink(missing_ok=True)

    def report(self, own: Mapping[str, Any]) -> dict[str, Any]:
        """The server's recorder (summed over workers, the worst ages) and one line per worker."""
        workers = [{"pid": self.pid, "stale": False, **own}, *self._others]
        return {"recorder": combine_recorders([w.get("recorder") or {} for w in workers]), "workers": workers}

    @staticmethod
    def healthy(workers: Sequence[Mapping[str, Any]]) -> bool:
        """Every live worker's recorder is healthy, and no stale worker left records unwritten."""
        for worker in workers:
            recorder = worker.get("recorder") or {}
            if worker.get("stale"):
                if recorder.get("queue_depth") or recorder.get("spool_records"):
                    return False
            elif recorder.get("healthy") is False:
                return False
        return True


def combine_recorders(recorders: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    if len(recorders) == 1:
        return dict(recorders[0])
    merged: dict[str, Any] = {key: sum(int(r.get(key) or 0) for r in recorders) for key in _SUMMED}
    for key in _WORST:
        ages = [float(r[key]) for r in recorders if r.get(key) is not None]
        merged[key] = max(ages) if ages else None
    merged["running"] = all(bool(r.get("running")) for r in recorders)
    merged["healthy"] = all(r.get("healthy") is not False for r in recorders)
    merged["queue_size"] = sum(int(r.get("queue_size") or 0) for r in recorders)
    merged["spool_max_bytes"] = max((int(r.get("spool_max_bytes") or 0) for r in recorders), default=0)
    errors = [str(r["last_error"]) for r in recorders if r.get("last_error")]
    merged["last_error"] = errors[0] if errors else None
    return merged

"""`Spool`: call records waiting on local disk while the database is away, replayed oldest first.

Each process owns one slot file (`<name>-<n>.jsonl` under an flock; one name per database): append-only JSON
lines, fsynced once per append (appends happen only during outages, a few per second). Files left by processes
that are gone are adopted and replayed first. The replay position lives in `<file>.offset`; it may lag after a
crash, so a replay can repeat records: the call log's insert skips stored ids, so none is doubled.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from portico.core.records import CallRecord

log = logging.getLogger("portico.recorder")

_SLOTS = 256
_FIELDS = frozenset(CallRecord._fields)


def encode(record: CallRecord) -> bytes:
    return orjson.dumps(record.as_json()) + b"\n"


def decode(line: bytes) -> CallRecord:
    data: dict[str, Any] = {k: v for k, v in orjson.loads(line).items() if k in _FIELDS}
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    data["attempts"] = tuple(data.get("attempts") or ())
    return CallRecord(**data)


class _Segment:
    """One slot file under our flock, and how far it has been replayed."""

    def __init__(self, path: Path, handle: IO[bytes]) -> None:
        self.path = path
        self.handle = handle
        self.offset_path = path.with_suffix(".offset")
        self.size = os.fstat(handle.fileno()).st_size
        self.offset = 0
        with contextlib.suppress(OSError, ValueError):
            self.offset = min(int(self.offset_path.read_text()), self.size)
        self.count = self._count_lines()

    @property
    def pending(self) -> int:
        return self.size - self.offset

    def _count_lines(self) -> int:
        self.handle.seek(self.offset)
        return sum(1 for _ in self.handle)

    def read(self, limit: int) -> tuple[list[CallRecord], int, int]:
        """Up to `limit` records from the replay position: (records, end offset, lines consumed)."""
        self.handle.seek(self.offset)
        records: list[CallRecord] = []
        position, lines = self.offset, 0
        while len(records) < limit and position < self.size:
            line = self.handle.readline()
            if not line:
                break
            position += len(line)
            lines += 1
            try:
                records.append(decode(line))
            except (ValueError, TypeError, KeyError):  # a torn last line after a crash, or a foreign file
                log.warning("call log spool %s: skipped an unreadable line at byte %d", self.path, position)
        return records, position, lines

    def commit(self, offset: int, lines: int) -> None:
        self.offset, self.count = offset, max(0, self.count - lines)
        if self.offset >= self.size:
            self.handle.truncate(0)
            self.size = self.offset = self.count = 0
            self.offset_path.unlink(missing_ok=True)
            return
        staged = self.offset_path.with_suffix(".offset.tmp")
        staged.write_text(str(self.offset))  # not fsynced: a stale offset only repeats records, never loses one
        staged.replace(self.offset_path)

    def close(self) -> None:
        self.handle.close()


class Spool:
    """A bounded on-disk queue of call records. Blocking file I/O: call it from a worker thread."""

    def __init__(self, directory: Path, max_bytes: int, name: str = "calllog") -> None:
        self.directory = directory
        self.name = name
        self.max_bytes = max_bytes
        self._own: _Segment | None = None
        self._adopted: list[_Segment] = []
        self.oldest_at: datetime | None = None
        """When the oldest waiting record was made (kept here, so a health probe never touches the file)."""

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.directory.glob(f"{self.name}-*.jsonl")):
            segment = _claim(path)
            if segment is None:
                continue  # a live process's own file
            if self._own is None:
                self._own = segment
            elif segment.pending:
                self._adopted.append(segment)
            else:
                segment.close()
        for slot in range(_SLOTS):
            path = self.directory / f"{self.name}-{slot}.jsonl"
            if self._own is not None:
                break
            if not path.exists():
                self._own = _claim(path)
        if self._own is None:
            raise OSError(f"call log spool: all {_SLOTS} slots in {self.directory} are taken")
        self.oldest_at = self._peek()
        if self.records:
            log.warning("call log spool: %d record(s) from an earlier run wait to be written", self.records)

    @property
    def records(self) -> int:
        return sum(segment.count for segment in self._segments())

    @property
    def bytes(self) -> int:
        return sum(segment.pending for segment in self._segments())

    def _segments(self) -> list[_Segment]:
        return [*self._adopted, *([self._own] if self._own else [])]

    def append(self, records: Sequence[CallRecord]) -> int:
        """Append as many records (in order) as the size bound allows, durably; returns how many."""
        own = self._own
        if own is None or not records:
            return 0
        room = self.max_bytes - self.bytes
        lines: list[bytes] = []
        for record in records:
            line = encode(record)
            if len(line) > room:
                break
            room -= len(line)
            lines.append(line)
        if lines:
            if not self.records:
                self.oldest_at = records[0].created_at
            try:
                own.handle.seek(0, os.SEEK_END)
                own.handle.write(b"".join(lines))
                own.handle.flush()
                os.fsync(own.handle.fileno())
            except OSError:
                own.handle.truncate(own.size)  # no torn line left to glue the next append onto
                raise
            own.size = os.fstat(own.handle.fileno()).st_size
            own.count += len(lines)
        return len(lines)

    def read(self, limit: int) -> tuple[list[CallRecord], tuple[int, int, int]]:
        """The oldest waiting records; pass the returned mark to `commit` once they are stored."""
        for index, segment in enumerate(self._segments()):
            if segment.pending:
                records, offset, lines = segment.read(limit)
                if records:
                    self.oldest_at = records[0].created_at
                return records, (index, offset, lines)
        for segment in self._segments():
            segment.count = 0  # nothing left to read: no count may say otherwise (the writer would spin)
        return [], (-1, 0, 0)

    def commit(self, mark: tuple[int, int, int]) -> None:
        index, offset, lines = mark
        segments = self._segments()
        if not 0 <= index < len(segments):
            return
        segment = segments[index]
        segment.commit(offset, lines)
        if segment is not self._own and not segment.pending:
            self._adopted.remove(segment)
            segment.path.unlink(missing_ok=True)
            segment.close()
        if not self.records:
            self.oldest_at = None

    def _peek(self) -> datetime | None:
        records, _ = self.read(1)
        return records[0].created_at if records else None

    def close(self) -> None:
        for segment in self._segments():
            if not segment.size:
                segment.path.unlink(missing_ok=True)  # under our lock still: nobody else is using it
            segment.close()
        self._own, self._adopted = None, []


def _claim(path: Path) -> _Segment | None:
    """The slot file under an exclusive flock, or None when another live process holds it."""
    handle = path.open("a+b")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return _Segment(path, handle)

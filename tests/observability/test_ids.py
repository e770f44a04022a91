"""Time-ordered ids: 32 lower-case hex digits, the first 14 the creation time in microseconds."""

from __future__ import annotations

import random
import time

import pytest

from portico.core import ids
from portico.core.ids import time_ordered_id


def test_an_id_is_the_microsecond_timestamp_then_72_random_bits() -> None:
    before = time.time_ns() // 1000
    value = time_ordered_id()
    after = time.time_ns() // 1000
    assert len(value) == 32
    assert value == value.lower()
    assert before <= int(value[:14], 16) <= after
    int(value[14:], 16)  # hex throughout


def test_the_digits_are_those_of_the_two_parts_zero_padded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_now_ns", lambda: 1_000)  # 1 µs: the timestamp needs its leading zeros
    monkeypatch.setattr(ids, "_bits", lambda bits: 0xAB)
    assert time_ordered_id() == f"{1:014x}{0xAB:018x}"
    monkeypatch.setattr(ids, "_bits", lambda bits: (1 << bits) - 1)
    assert time_ordered_id() == "00000000000001" + "f" * 18


def test_ids_sort_by_creation_time() -> None:
    random.seed(7)
    made = []
    for _ in range(50):
        made.append(time_ordered_id())
        time.sleep(0.00002)
    assert made == sorted(made)

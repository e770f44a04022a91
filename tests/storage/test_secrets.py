"""The secret key generated under PORTICO_HOME: every process of `serve --workers N` ends up with the same one."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from portico.storage.secrets import SecretBox


def test_a_key_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    first = SecretBox.from_env(env={}, home=tmp_path)
    path = tmp_path / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SecretBox.from_env(env={}, home=tmp_path).decrypt(first.encrypt("sk-upstream")) == "sk-upstream"
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]  # no staging file left behind


def test_a_process_that_loses_the_race_uses_the_winners_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another worker created the key between this one's check and its write (the check is made to miss)."""
    winner = SecretBox.from_env(env={}, home=tmp_path)
    monkeypatch.setattr(Path, "exists", lambda self: False)
    loser = SecretBox.from_env(env={}, home=tmp_path)
    assert loser.decrypt(winner.encrypt("sk-upstream")) == "sk-upstream"


def test_workers_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    start = threading.Barrier(16)
    boxes: list[SecretBox] = []
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            boxes.append(SecretBox.from_env(env={}, home=tmp_path))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    token = boxes[0].encrypt("sk-upstream")
    assert all(box.decrypt(token) == "sk-upstream" for box in boxes)

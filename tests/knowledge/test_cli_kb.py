"""`portico kb …` as an operator runs it: the real command in a subprocess against a real gateway (mock embedder),
files of every supported type on disk, the progress bar, exit codes and the errors named."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import KEY, http
from tests.gateway_server import GatewayThread
from tests.knowledge.pdf_files import make_pdf


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayThread]:
    with GatewayThread({"auth": {"keys": [KEY]}, "logging": {"request_log": False}}) as gw:
        yield gw


def kb(gateway: GatewayThread, *args: str, key: str = KEY) -> subprocess.CompletedProcess[str]:
    """Output decoded by hand: `text=True` would turn the progress bar's carriage returns into newlines."""
    command = [sys.executable, "-m", "portico.cli", "kb", *args, "--url", gateway.url, "--key", key]
    done = subprocess.run(command, check=False, capture_output=True, timeout=120)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def datasources(gateway: GatewayThread, name: str) -> list[dict[str, object]]:
    answer = http(
        "GET", f"{gateway.url}/v1/admin/knowledge/{name}/datasources", None, {"authorization": f"Bearer {KEY}"}
    )
    assert answer.status == 200, answer.body
    data: list[dict[str, object]] = answer.json()["data"]
    return data


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "policies" / "old").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "warranty.pdf").write_bytes(make_pdf(["Warranty: two years on every espresso machine part."]))
    (root / "policies" / "refunds.md").write_text("# Refunds\n\nRefunds take **five days** after the return arrives.")
    (root / "policies" / "old" / "shipping.html").write_text(
        "<html><body><nav>Menu</nav><p>Shipping is free for orders above fifty euros.</p></body></html>"
    )
    (root / "faq.txt").write_text("Opening hours: the shop opens at nine and closes at six.")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / ".git" / "notes.txt").write_text("hidden files are never uploaded")
    return root


def test_create_list_ingest_search_delete(gateway: GatewayThread, docs: Path, tmp_path: Path) -> None:
    created = kb(gateway, "create", "shop", "--embedding-model", "mock/embed", "--chunk-size", "300",
                 "--chunk-overlap", "30", "--retrieval-type", "hybrid", "--top-k", "3", "--description", "Shop docs")  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "shop" in created.stdout and "mock/embed" in created.stdout and "300/30" in created.stdout
    again = kb(gateway, "create", "shop", "--embedding-model", "mock/embed")
    assert again.returncode == 1 and "shop" in again.stderr

    listed = kb(gateway, "list")
    assert listed.returncode == 0 and any(line.startswith("shop ") for line in listed.stdout.splitlines())
    assert "Shop docs" in listed.stdout

    ingested = kb(gateway, "ingest", "shop", str(docs), "--metadata", '{"team": "support"}')
    assert ingested.returncode == 0, ingested.stderr
    assert "shop: 4 of 4 files indexed" in ingested.stdout
    assert "\r[" in ingested.stderr and "4/4 files" in ingested.stderr and "#" * 30 in ingested.stderr
    sources = datasources(gateway, "shop")
    assert sorted(str(s["name"]) for s in sources) == ["faq.txt", "refunds.md", "shipping.html", "warranty.pdf"]
    assert all(s["status"] == "completed" for s in sources)

    rerun = kb(gateway, "ingest", "shop", str(docs))
    assert rerun.returncode == 0 and len(datasources(gateway, "shop")) == 4, "the same bytes are not stored twice"

    found = kb(gateway, "search", "shop", "espresso machine warranty", "--type", "keyword")
    assert found.returncode == 0, found.stderr
    first = found.stdout.splitlines()[0]
    assert first.startswith(" 1. [") and "warranty.pdf p.1" in first and "two years" in found.stdout

    as_json = kb(gateway, "search", "shop", "free shipping", "--json", "--top-k", "1", "--type", "vector")
    hits = json.loads(as_json.stdout)["data"]
    assert len(hits) == 1 and hits[0]["metadata"]["file_name"] == "shipping.html"
    assert hits[0]["metadata"]["team"] == "support" and "Menu" not in hits[0]["text"]

    only_pdf = kb(gateway, "search", "shop", "refunds shipping warranty", "--json", "--filter",
                  '{"file_type": {"eq": "pdf"}}')  # fmt: skip
    assert [h["metadata"]["file_type"] for h in json.loads(only_pdf.stdout)["data"]] == ["pdf"]

    deleted = kb(gateway, "delete", "shop")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    gone = kb(gateway, "search", "shop", "anything")
    assert gone.returncode == 1 and "shop" in gone.stderr and "not found" in gone.stderr
    assert kb(gateway, "delete", "shop").returncode == 1


def test_a_refused_file_is_named_and_fails_the_command_the_others_are_indexed(
    gateway: GatewayThread, docs: Path, tmp_path: Path
) -> None:
    assert kb(gateway, "create", "mixed", "--embedding-model", "mock/embed").returncode == 0
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    picture = docs / "logo.png"
    result = kb(gateway, "ingest", "mixed", str(docs / "faq.txt"), str(empty), str(picture))
    assert result.returncode == 1
    assert "mixed: 1 of 3 files indexed" in result.stdout
    assert f"failed: {empty}:" in result.stderr and "empty" in result.stderr
    assert f"failed: {picture}:" in result.stderr and ".pdf" in result.stderr, "the 415 says what is supported"
    assert [s["name"] for s in datasources(gateway, "mixed")] == ["faq.txt"]


def test_operator_mistakes_get_clear_messages_and_exit_codes(gateway: GatewayThread, docs: Path) -> None:
    missing_kb = kb(gateway, "ingest", "no-such-kb", str(docs / "faq.txt"))
    assert missing_kb.returncode == 1 and "\nerror: " in missing_kb.stderr and "no-such-kb" in missing_kb.stderr
    missing_path = kb(gateway, "ingest", "no-such-kb", str(docs / "absent.md"))
    assert missing_path.returncode == 1 and "absent.md: no such file" in missing_path.stderr
    (docs / "pictures").mkdir()
    (docs / "pictures" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    nothing = kb(gateway, "ingest", "no-such-kb", str(docs / "pictures"))
    assert nothing.returncode == 1 and "no files to ingest" in nothing.stderr
    bad_json = kb(gateway, "search", "x", "q", "--filter", "{not json")
    assert bad_json.returncode == 1 and "--filter is not valid JSON" in bad_json.stderr
    bad_filter = kb(gateway, "create", "f", "--embedding-model", "mock/embed")
    assert bad_filter.returncode == 0
    refused = kb(gateway, "search", "f", "q", "--filter", '{"file_type": {"like": "pdf"}}')
    assert refused.returncode == 1 and "filter_by" in refused.stderr
    assert kb(gateway, "list", key="sk-wrong").returncode == 4
    unreachable = subprocess.run(
        [sys.executable, "-m", "portico.cli", "kb", "list", "--url", "http://127.0.0.1:1"],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr


def test_ingest_without_waiting_returns_once_uploaded(gateway: GatewayThread, docs: Path) -> None:
    assert kb(gateway, "create", "later", "--embedding-model", "mock/embed", "--splitter", "token").returncode == 0
    result = kb(gateway, "ingest", "later", str(docs / "faq.txt"), "--no-wait")
    assert result.returncode == 0 and "later: 1 of 1 files uploaded" in result.stdout
    assert "chunks" not in result.stderr, "no progress bar without waiting"
    assert [s["name"] for s in datasources(gateway, "later")] == ["faq.txt"]

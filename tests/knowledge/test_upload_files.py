"""Files of each type uploaded to a real gateway (`POST /v1/admin/knowledge/{key}/datasources`, multipart): the
chunks they give, and the JSON error each bad file gets, with nothing stored for it."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import KEY, Response, http
from tests.gateway_server import GatewayThread
from tests.knowledge.pdf_files import encrypt_pdf, make_pdf
from tests.storage.conftest import drop_schema, postgres_url

AUTH = {"authorization": f"Bearer {KEY}"}
SOURCES = "/v1/admin/knowledge/files/datasources"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    """A gateway on each storage engine: a SQLite file, and a schema of its own on the real PostgreSQL."""
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path_factory.mktemp('kb') / 'portico.db'}", ""
    else:
        server = asyncio.run(postgres_url())
        schema = f"portico_test_{secrets.token_hex(6)}"
        url = f"{server}?schema={schema}"
    settings = {"auth": {"keys": [KEY]}, "logging": {"request_log": False}, "storage": {"url": url}}
    try:
        with GatewayThread(settings) as gw:
            body = {"key": "files", "embedding_model": "mock/embed", "chunk_size": 200, "chunk_overlap": 20}
            headers = {**AUTH, "content-type": "application/json"}
            created = http("POST", gw.url + "/v1/admin/knowledge", json.dumps(body).encode(), headers)
            assert created.status == 201, created.body
            yield gw
    finally:
        if schema:
            asyncio.run(drop_schema(server, schema))


def upload(
    gateway: GatewayThread, name: str, content: bytes, content_type: str = "application/octet-stream"
) -> Response:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{{"source": "test"}}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {**AUTH, "content-type": f"multipart/form-data; boundary={boundary}"}
    return http("POST", gateway.url + SOURCES, body, headers)


def chunks_of(gateway: GatewayThread, source: dict[str, Any]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while source["status"] not in {"completed", "failed"}:
        assert time.monotonic() < deadline, source
        time.sleep(0.05)
        source = http("GET", f"{gateway.url}{SOURCES}/{source['id']}", None, AUTH).json()
    assert source["status"] == "completed", source
    answer = http("GET", f"{gateway.url}{SOURCES}/{source['id']}/chunks?limit=100", None, AUTH)
    chunks: list[dict[str, Any]] = answer.json()["data"]
    return chunks


def names(gateway: GatewayThread) -> list[str]:
    return [s["name"] for s in http("GET", gateway.url + SOURCES, None, AUTH).json()["data"]]


def test_pdf_chunks_keep_their_page_numbers(gateway: GatewayThread) -> None:
    pdf = make_pdf(["Page one: the warranty lasts two years.", "", "Page three: returns within thirty days."])
    answer = upload(gateway, "terms.pdf", pdf, "application/pdf")
    assert answer.status == 202, answer.body
    assert answer.json()["file_type"] == "pdf"
    chunks = chunks_of(gateway, answer.json())
    assert [(c["text"], c["page_number"]) for c in chunks] == [
        ("Page one: the warranty lasts two years.", 1),
        ("Page three: returns within thirty days.", 3),
    ]
    assert all(c["metadata"]["file_name"] == "terms.pdf" and c["metadata"]["source"] == "test" for c in chunks)


def test_html_and_markdown_are_indexed_as_their_visible_text(gateway: GatewayThread) -> None:
    html = b"<html><head><script>track()</script></head><body><nav>Home</nav><h1>Hours</h1><p>Open 9&ndash;6.</p>"
    page = chunks_of(gateway, upload(gateway, "hours.html", html).json())
    assert [c["text"] for c in page] == ["Hours\n\nOpen 9\u20136."]
    markdown = b"# Delivery\n\n*Parcels* ship with [PostCo](https://post.example) in **two days**."
    notes = chunks_of(gateway, upload(gateway, "delivery.md", markdown, "text/markdown").json())
    assert [c["text"] for c in notes] == ["Delivery\n\nParcels ship with PostCo in two days."]
    assert notes[0]["metadata"]["file_type"] == "md"


def test_long_text_is_chunked_with_the_bases_settings(gateway: GatewayThread) -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(40))
    chunks = chunks_of(gateway, upload(gateway, "long.txt", text.encode()).json())
    assert len(chunks) > 5 and all(len(c["text"]) <= 200 for c in chunks)
    assert [c["index"] for c in chunks] == list(range(len(chunks)))
    assert chunks[0]["text"].startswith("Sentence number 0 ") and chunks[-1]["text"].endswith("topic 4.")


@pytest.mark.parametrize(
    ("name", "content", "status", "code"),
    [
        ("secret.pdf", encrypt_pdf(make_pdf(["secret"]), user_password="pw"), 422, "unreadable_document"),
        ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", 422, "unreadable_document"),
        ("latin.txt", "Café".encode("latin-1") + b" \xff", 400, "unreadable_document"),
        ("blank.md", b" \n\n \t", 400, "empty_document"),
        ("scan.pdf", make_pdf([""]), 400, "empty_document"),
        ("report.docx", b"PK\x03\x04 zip bytes", 415, "unsupported_media_type"),
    ],
)
def test_a_bad_file_gets_a_clear_json_error_and_nothing_is_stored(
    gateway: GatewayThread, name: str, content: bytes, status: int, code: str
) -> None:
    answer = upload(gateway, name, content)
    assert answer.status == status, answer.body
    error = answer.json()["error"]
    assert error["code"] == code and name in error["message"]
    assert name not in names(gateway)

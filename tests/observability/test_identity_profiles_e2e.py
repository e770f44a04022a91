"""Identity profiles as a client sends them and an operator reads them, on SQLite and PostgreSQL: `identity`
(and the deprecated `contact`) with display name, email, logo URL, tags and metadata is upserted on first sight,
updated field by field when it changes, and returned by `/v1/identities` next to the identity's totals."""

from __future__ import annotations

import time
from typing import Any

import openai

from tests.conftest import KEY, Stack
from tests.storage.test_call_log_e2e import wait_for_record


def ask(stack: Stack, **extra: Any) -> str:
    client = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "who am I"}], extra_body=extra
    )
    request_id = str(raw.headers["x-request-id"])
    wait_for_record(stack, request_id)
    return request_id


def identity_when(stack: Stack, identity_id: str, **wanted: Any) -> dict[str, Any]:
    """The identity once it shows what is wanted (profiles are written off the request path)."""
    deadline = time.monotonic() + 5
    while True:
        response = stack.get(f"/v1/identities/{identity_id}")
        found: dict[str, Any] = response.json() if response.status == 200 else {}
        if found and all(found.get(k) == v for k, v in wanted.items()):
            return found
        assert time.monotonic() < deadline, f"identity {identity_id} is {found}, wanted {wanted}"
        time.sleep(0.02)


ADA = {
    "id": "ada",
    "display_name": "Ada",
    "email": "ada@example.com",
    "logo_url": "https://example.com/ada.png",
    "tags": ["vip", "beta"],
    "metadata": [{"team": "core"}, {"plan": "pro"}],
}


def test_a_profile_is_stored_updated_by_field_and_listed(logged: Stack) -> None:
    ask(logged, identity=ADA)
    ada = identity_when(logged, "ada", display_name="Ada")
    assert ada["email"] == "ada@example.com" and ada["logo_url"] == "https://example.com/ada.png"
    assert ada["tags"] == ["vip", "beta"] and ada["metadata"] == {"team": "core", "plan": "pro"}

    ask(logged, identity={"id": "ada", "display_name": "Ada L.", "tags": ["vip"]})  # a change, two fields
    ask(logged, identity={"id": "ada"})  # by id alone: the profile stays
    ada = identity_when(logged, "ada", display_name="Ada L.", request_count=3)
    assert ada["tags"] == ["vip"] and ada["email"] == "ada@example.com"  # fields not sent keep their values
    assert ada["metadata"] == {"team": "core", "plan": "pro"}

    raw = logged.post(
        "/v2/router/chat/completions",
        {
            "model": "openai/gpt-4o",
            "messages": [{"role": "user", "content": "deprecated"}],
            "contact": {"id": "bob", "display_name": "Bob", "email": "bob@example.com"},
        },
    )
    assert raw.status == 200
    identity_when(logged, "bob", display_name="Bob", request_count=1)

    listing = logged.get("/v1/identities").json()
    by_id = {row["id"]: row for row in listing["data"]}
    assert listing["total"] == 2 and set(by_id) == {"ada", "bob"}
    assert by_id["bob"]["email"] == "bob@example.com" and by_id["bob"]["tags"] is None
    assert by_id["ada"]["display_name"] == "Ada L." and by_id["ada"]["request_count"] == 3


def test_an_identity_sent_by_id_alone_has_an_empty_profile(logged: Stack) -> None:
    ask(logged, identity={"id": "plain"})
    plain = identity_when(logged, "plain", request_count=1)
    assert all(plain[name] is None for name in ("display_name", "email", "logo_url", "tags", "metadata"))

"""`BodyPolicy`/`BodyTap`/`BodyCapture` in isolation: modes, the cut and its marker, and what is always masked."""

from __future__ import annotations

import json

import pytest

from portico.observability.bodies import BadBodyMode, BodyCapture, BodyPolicy, BodyTap


def test_the_header_chooses_a_mode_and_anything_else_is_refused() -> None:
    policy = BodyPolicy("truncated")
    assert policy.mode_for(None) == "truncated"
    assert policy.mode_for(b" FULL ") == "full" and policy.mode_for(b"none") == "none"
    for bad in (b"", b"yes", b"\xff", b"truncate"):
        with pytest.raises(BadBodyMode, match="none, truncated, full"):
            policy.mode_for(bad)


def test_none_keeps_nothing_and_full_keeps_everything() -> None:
    body = b"x" * 50_000
    assert BodyPolicy("full", max_bytes=10).kept(body, "none") is None
    assert BodyPolicy("none", max_bytes=10).kept(body, "full") == "x" * 50_000


def test_truncated_keeps_the_first_bytes_and_says_how_many_more_there_were() -> None:
    policy = BodyPolicy(max_bytes=10)
    assert policy.kept(b"0123456789", "truncated") == "0123456789"
    assert policy.kept(b"0123456789abc", "truncated") == "0123456789…[3 more bytes not kept]"
    assert policy.kept("ééééé€".encode(), "truncated") == "ééééé…[3 more bytes not kept]"
    assert policy.kept("xééééé".encode(), "truncated") == "xéééé…[2 more bytes not kept]"  # never half a character


def test_a_tap_collects_up_to_its_limit_and_counts_the_rest() -> None:
    policy = BodyPolicy(max_bytes=4)
    tap = BodyTap(policy.limit("truncated"))
    for _ in range(300):
        tap(b"data: {}\n\n")
    assert tap.seen == 3000 and len(tap.body()) == 516 and tap.cut == 3000 - 516
    assert policy.kept(tap.body(), "truncated", not_seen=tap.cut) == "data…[2996 more bytes not kept]"
    assert BodyTap(None).seen == 0


def test_pii_values_are_masked_however_json_spelled_them() -> None:
    values = ("Jane Doe", 'Ann "Nan" Ng', "Zoë Ångström")
    body = json.dumps({"a": "Jane Doe", "b": 'Ann "Nan" Ng', "c": "Zoë Ångström"})  # ASCII-escaped, quotes escaped
    kept = BodyPolicy().kept(body.encode(), "full", values)
    assert kept == '{"a": "[PII]", "b": "[PII]", "c": "[PII]"}'
    raw = json.dumps({"c": "Zoë Ångström"}, ensure_ascii=False).encode()
    assert BodyPolicy().kept(raw, "full", values) == '{"c": "[PII]"}'


def test_keys_never_stay_in_a_body() -> None:
    policy = BodyPolicy(secrets=["gsk_live_9f8e7d6c5b4a", "short"])
    body = b'{"content": "my keys: gsk_live_9f8e7d6c5b4a and sk-proj-abcdef123456", "api_key": "plainvalue", "x": 1}'
    kept = policy.kept(body, "full")
    assert kept is not None
    assert "gsk_live_9f8e7d6c5b4a" not in kept and "abcdef123456" not in kept and "plainvalue" not in kept
    assert "short" not in policy.secrets, "a short key would mask ordinary words"
    shaped = b'{"u": "https://x.test/v1?KEY=AIzaSyA1b2c3", "h": "Authorization: BEARER tok.en-123"}'
    assert (
        policy.kept(shaped, "full")
        == '{"u": "https://x.test/v1?KEY=[REDACTED]", "h": "Authorization: BEARER [REDACTED]"}'
    )
    plain = b'{"content": "nothing secret here, just a skeleton key"}'
    assert policy.kept(plain, "full") == plain.decode()


def test_a_nul_byte_cannot_cost_the_record_its_place_in_postgresql() -> None:
    assert BodyPolicy().kept(b"a\x00b", "full") == "a\\u0000b"


def test_a_capture_keeps_each_side_and_none_for_a_side_that_never_passed() -> None:
    capture = BodyCapture(BodyPolicy(max_bytes=5), "truncated")
    capture.request(b'{"name": "Jane Doe"}')
    assert capture.kept(["Jane Doe"]) == ('{"nam…[12 more bytes not kept]', None)  # masked, then cut
    capture.response(b"data: [DONE]\n\n")
    assert capture.kept()[1] == "data:…[9 more bytes not kept]"


def test_a_requests_own_keys_are_masked_too() -> None:
    capture = BodyCapture(BodyPolicy(secrets=["configured-key-1"]), "full")
    capture.request(b'{"content": "byok-abc123def456 and configured-key-1"}')
    assert capture.kept((), ["byok-abc123def456"]) == ('{"content": "[REDACTED] and [REDACTED]"}', None)


def test_a_value_split_over_frames_is_masked_per_choice_and_whole_frames_stay_as_sent() -> None:
    from portico.observability.bodies import mask_across_frames

    def frame(index: int, content: str) -> str:
        return "data: " + json.dumps({"choices": [{"index": index, "delta": {"content": content}}]})

    untouched = 'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}'
    frames = [untouched, frame(0, "call Ja"), frame(1, "Ja"), frame(0, "ne now"), frame(1, "ck too"), "data: [DONE]"]
    out = mask_across_frames("\n\n".join(frames) + "\n\n", [("Jane", "[PII]")])
    kept = out.split("\n\n")
    assert kept[0] == untouched and kept[2] == frame(1, "Ja") and kept[4] == frame(1, "ck too")  # choice 1: Jack
    texts = [json.loads(f[6:])["choices"][0]["delta"]["content"] for f in (kept[1], kept[3])]
    assert texts == ["call [PII]", " now"]
    assert mask_across_frames(frame(0, "nothing here"), [("Jane", "[PII]")]) == frame(0, "nothing here")

"""PII detection quality on a labelled set generated here: valid entities must be found (recall), checksum-failing
look-alikes and everyday numbers must not be (precision). The numbers are printed for the issue's note."""

from __future__ import annotations

import random
import string
from collections import Counter

import pytest

from portico.guardrails.pii import bsn_valid, find_pii, iban_valid, luhn_valid

RNG_SEED = 21
_IBAN_COUNTRIES = {"NL": ("ABNA", 10), "DE": ("", 18), "GB": ("NWBK", 14), "FR": ("", 23), "BE": ("", 12)}


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for last in string.digits:
        if luhn_valid(body + last):
            return body + last
    raise AssertionError("unreachable: one check digit always fits")


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16)])
    digits = _luhn_complete(prefix, length, rng)
    style = rng.choice(["plain", "spaces", "dashes"])
    if style == "plain" or length == 15:
        return digits
    sep = " " if style == "spaces" else "-"
    return sep.join(digits[i : i + 4] for i in range(0, 16, 4))


def _broken(value: str) -> str:
    """The same value with its last digit changed: the checksum fails."""
    last = next(i for i in range(len(value) - 1, -1, -1) if value[i].isdigit())
    return value[:last] + str((int(value[last]) + rng_digit(value)) % 10) + value[last + 1 :]


def rng_digit(value: str) -> int:
    return 1 + sum(map(ord, value)) % 9  # 1..9: never 0, so the digit always changes


def _iban(rng: random.Random) -> str:
    country, (bank, digits) = rng.choice(sorted(_IBAN_COUNTRIES.items()))
    bban = bank + "".join(rng.choice(string.digits) for _ in range(digits))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    iban = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    assert iban_valid(iban)
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.5 else iban


def _broken_iban(value: str) -> str:
    compact = value.replace(" ", "")
    check = (int(compact[2:4]) + 1 + rng_digit(value) % 50) % 97  # mod 97: a change of 97 would still be valid
    broken = compact[:2] + f"{check:02d}" + compact[4:]
    assert not iban_valid(broken)
    return broken


def _bsn(rng: random.Random) -> str:
    while True:
        head = "".join(rng.choice(string.digits) for _ in range(8))
        total = sum(int(d) * w for d, w in zip(head, range(9, 1, -1), strict=True))
        last = total % 11
        if last < 10 and head != "00000000":
            return head + str(last)


def _ssn(rng: random.Random) -> str:
    return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _phone(rng: random.Random) -> str:
    d = lambda n: "".join(rng.choice(string.digits) for _ in range(n))  # noqa: E731
    return rng.choice(
        [
            f"+31 6 {d(8)}", f"06-{d(8)}", f"020-{d(7)}", f"+44 20 {d(4)} {d(4)}", f"+1 (415) {d(3)}-{d(4)}",
            f"({rng.randint(2, 9)}{d(2)}) {d(3)}-{d(4)}", f"+49 30 {d(8)}", f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}",
            f"01 {d(2)} {d(2)} {d(2)} {d(2)}", f"+{d(11)}",
        ]
    )  # fmt: skip


def _email(rng: random.Random) -> str:
    name = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 10)))
    return f"{name}.{rng.choice(['x', 'van', 'de'])}@{rng.choice(['example.com', 'mail.co.uk', 'bedrijf.nl'])}"


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return ".".join(str(rng.randint(0, 255)) for _ in range(4))
    return "2001:db8:" + ":".join(f"{rng.randint(0, 65535):x}" for _ in range(3)) + "::1"


def _key_of(rng: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    kind = rng.choice(["sk", "proj", "ghp", "aws"])
    if kind == "aws":
        return "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))
    tail = "".join(rng.choice(alnum) for _ in range(36))
    return {"sk": "sk-", "proj": "sk-proj-", "ghp": "ghp_"}[kind] + tail


def _non_card_number(rng: random.Random) -> str:
    return _broken(_luhn_complete(rng.choice("3456"), 16, rng))


def labelled(n: int = 200) -> list[tuple[str, str | None, str]]:
    """(text, entity or None for a look-alike, the value) triples."""
    rng = random.Random(RNG_SEED)
    rows: list[tuple[str, str | None, str]] = []
    makers = {
        "credit_card": _card, "iban": _iban, "bsn": _bsn, "ssn": _ssn, "phone": _phone, "email": _email,
        "ip_address": _ip, "api_key": _key_of,
    }  # fmt: skip
    for entity, make in makers.items():
        for _ in range(n):
            rows.append((entity, entity, make(rng)))
    for _ in range(n):
        rows.append(("card look-alike", None, _broken(_card(rng))))
        rows.append(("iban look-alike", None, _broken_iban(_iban(rng))))
        bsn = _bsn(rng)
        rows.append(("bsn look-alike", None, _broken(bsn)))
        rows.append(("ssn look-alike", None, f"{rng.choice(['000', '666', '912'])}-{rng.randint(10, 99)}-1234"))
        rows.append(("ip look-alike", None, f"{rng.randint(256, 999)}.{rng.randint(0, 255)}.1.1"))
        rows.append(("date", None, f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"))
        rows.append(("eu date", None, f"{rng.randint(1, 28):02d}-{rng.randint(1, 12):02d}-{rng.randint(1990, 2030)}"))
        rows.append(("time", None, f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"))
        rows.append(("price", None, f"{rng.randint(1, 99999)}.{rng.randint(0, 99):02d}"))
        rows.append(("version", None, f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}"))
        rows.append(("order number", None, _non_card_number(rng)))
    return [(f"Please note {value} for the file.", label, value) for _, label, value in rows]


def measure() -> tuple[dict[str, tuple[float, float]], Counter[str]]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    lookalike_hits: Counter[str] = Counter()
    for text, label, value in labelled():
        start = text.index(value)
        spans = find_pii(text)
        hit = [s for s in spans if s.start <= start and s.end >= start + len(value)]
        for span in spans:
            if label is None or span.kind != label:
                fp[span.kind] += 1
                if label is None:
                    lookalike_hits[span.kind] += 1
        if label is not None:
            (tp if any(s.kind == label for s in hit) else fn)[label] += 1
    scores = {}
    for entity in sorted(set(tp) | set(fn)):
        precision = tp[entity] / max(1, tp[entity] + fp[entity])
        recall = tp[entity] / max(1, tp[entity] + fn[entity])
        scores[entity] = (precision, recall)
    return scores, lookalike_hits


def test_precision_and_recall_per_entity() -> None:
    scores, lookalike_hits = measure()
    for entity, (precision, recall) in scores.items():
        print(f"{entity:12s} precision {precision:.3f} recall {recall:.3f}")
    assert not lookalike_hits, f"checksum-failing look-alikes were reported as PII: {dict(lookalike_hits)}"
    for entity, (precision, recall) in scores.items():
        assert precision >= 0.98, (entity, precision)
        assert recall >= 0.97, (entity, recall)


@pytest.mark.parametrize(
    "value", ["NL91ABNA0417164300", "NL91 ABNA 0417 1643 00", "GB82WEST12345698765432", "DE89370400440532013000"]
)
def test_known_valid_ibans(value: str) -> None:
    assert [s.kind for s in find_pii(f"pay to {value} today")] == ["iban"]


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert bsn_valid("111222333") and not bsn_valid("111222334") and not bsn_valid("000000000")
    assert iban_valid("NL91ABNA0417164300") and not iban_valid("NL92ABNA0417164300")
    assert not iban_valid("NL91ABNA04171643001"), "a Dutch IBAN has 18 characters"


def test_spans_do_not_overlap_and_card_wins_over_phone() -> None:
    spans = find_pii("card 4111-1111-1111-1111, call 020-1234567")
    assert [s.kind for s in spans] == ["credit_card", "phone"]


def test_random_numbers_are_flagged_only_at_checksum_collision_rates() -> None:
    """A checksum cannot tell a real BSN from an order number that happens to pass it: about 1 random 9-digit
    number in 11 passes the 11-check, about 1 in 10 16-digit numbers passes Luhn (fewer with issuer prefixes)."""
    rng = random.Random(RNG_SEED)
    rates = {}
    for name, digits in [("9-digit", 9), ("16-digit", 16), ("6-digit", 6), ("12-digit", 12)]:
        flagged = sum(bool(find_pii(f"ref {rng.randint(10 ** (digits - 1), 10**digits - 1)} ok")) for _ in range(2000))
        rates[name] = flagged / 2000
    print("random numbers flagged:", rates)
    assert rates["9-digit"] < 0.11 and rates["16-digit"] < 0.08
    assert rates["6-digit"] == 0 and rates["12-digit"] == 0

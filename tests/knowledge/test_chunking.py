"""`split`: boundaries each splitter prefers, and properties checked over many seeded random documents: sizes
respected, chunks are stripped slices of one page that cover all of its text, overlap bounded, deterministic."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from portico.core.errors import ValidationFailed
from portico.core.knowledge import ChunkText, Page
from portico.knowledge.chunking import spans, split

WORDS = [
    "the",
    "refund",
    "policy",
    "covers",
    "orders",
    "shipped",
    "within",
    "thirty",
    "days",
    "of",
    "purchase",
    "and",
    "excludes",
    "gift",
    "cards",
]


def random_text(rng: random.Random) -> str:
    """Paragraphs of sentences of words, with the odd very long word, line break and non-ASCII sentence end."""
    paragraphs = []
    for _ in range(rng.randint(1, 6)):
        sentences = []
        for _ in range(rng.randint(1, 8)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(1, 25))]
            if rng.random() < 0.1:
                words.append("x" * rng.randint(30, 400))
            sentences.append(" ".join(words).capitalize() + rng.choice([".", "!", "?", "…", ".\n", "。"]))
        paragraphs.append(rng.choice([" ", "  ", "\n"]).join(sentences))
    return rng.choice(["", "  \n"]) + "\n\n".join(paragraphs) + rng.choice(["", "\n \n"])


CASES = [(seed, splitter) for seed in range(60) for splitter in ("recursive", "sentence", "paragraph")]


@pytest.mark.parametrize(("seed", "splitter"), CASES)
def test_character_splitters_hold_their_properties(seed: int, splitter: str) -> None:
    rng = random.Random(seed)
    text = random_text(rng)
    size = rng.choice([20, 50, 120, 400, 1000])
    overlap = rng.choice([0, size // 10, size // 3, size - 1])
    found = spans(text, size=size, overlap=overlap, splitter=splitter)
    assert found, "a page with text has at least one chunk"
    for (start, end), (next_start, next_end) in itertools.pairwise(found):
        assert next_start > start and next_end > end, "chunks move forward"
        assert end - next_start <= overlap, "overlap never exceeds the setting"
        assert not text[end:next_start].strip(), "the gap between two chunks is whitespace only"
    for start, end in found:
        assert 0 < end - start <= size
        assert text[start:end] == text[start:end].strip()
    assert not text[: found[0][0]].strip() and not text[found[-1][1] :].strip(), "all text is covered"
    assert spans(text, size=size, overlap=overlap, splitter=splitter) == found, "deterministic"


@pytest.mark.parametrize("seed", range(40))
def test_token_splitter_counts_words(seed: int) -> None:
    rng = random.Random(seed)
    text = random_text(rng)
    size = rng.choice([3, 10, 50])
    overlap = rng.choice([0, 1, size - 1])
    chunks = split([Page(text)], size=size, overlap=overlap, splitter="token")
    tokens = re.findall(r"\S{1,32}", text)
    assert all(len(re.findall(r"\S{1,32}", chunk.text)) <= size for chunk in chunks)
    covered = sum(len(re.findall(r"\S{1,32}", chunk.text)) for chunk in chunks) - overlap * (len(chunks) - 1)
    assert covered == len(tokens), "every token is in a chunk, and consecutive chunks share exactly `overlap`"


def test_recursive_prefers_paragraphs_then_sentences_then_words() -> None:
    text = "Short intro.\n\nCats sleep a lot. Dogs bark at night. Birds sing early.\n\nTiny.\n\nAlso tiny."
    assert [c.text for c in split([Page(text)], size=40, overlap=0, splitter="recursive")] == [
        "Short intro.",
        "Cats sleep a lot. Dogs bark at night.",
        "Birds sing early.",
        "Tiny.\n\nAlso tiny.",
    ]
    words = split([Page("alpha beta gamma delta epsilon")], size=12, overlap=0, splitter="recursive")
    assert [c.text for c in words] == ["alpha beta", "gamma delta", "epsilon"]


def test_overlap_starts_at_a_sentence_or_word_boundary() -> None:
    text = "One two three. Four five six. Seven eight nine. Ten eleven twelve."
    chunks = [c.text for c in split([Page(text)], size=32, overlap=16, splitter="sentence")]
    assert chunks == [
        "One two three. Four five six.",
        "Four five six. Seven eight nine.",  # a whole sentence fits in the 16-character tail: it starts there
        "eight nine. Ten eleven twelve.",  # "Seven eight nine." (17) does not: the earliest word that does
    ]
    hard = [c.text for c in split([Page("a" * 25)], size=10, overlap=4, splitter="recursive")]
    assert all(len(chunk) <= 10 for chunk in hard) and "".join(c[4:] if i else c for i, c in enumerate(hard)) == (
        "a" * 25
    )


def test_paragraph_splitter_gives_each_paragraph_its_own_chunk() -> None:
    text = "First para.\n\nSecond para.\n\nThird para that is a bit longer than the size allows for sure."
    chunks = [c.text for c in split([Page(text)], size=40, overlap=0, splitter="paragraph")]
    assert chunks[:2] == ["First para.", "Second para."]
    assert " ".join(chunks[2:]) == "Third para that is a bit longer than the size allows for sure."


def test_chunks_never_cross_pages_and_keep_page_numbers_and_a_running_index() -> None:
    pages = [Page("Page one text. " * 5, 1), Page("   ", 2), Page("Page three.", 3)]
    chunks = split(pages, size=40, overlap=10, splitter="recursive")
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert {c.page_number for c in chunks} == {1, 3}
    assert chunks[-1] == ChunkText("Page three.", len(chunks) - 1, 3)
    assert all("three" not in c.text for c in chunks if c.page_number == 1)


@pytest.mark.parametrize(
    ("size", "overlap", "splitter", "field"),
    [(0, 0, "recursive", "chunk_size"), (10, 10, "recursive", "chunk_overlap"), (10, -1, "token", "chunk_overlap"),
     (10, 2, "semantic", "splitter")],
)  # fmt: skip
def test_bad_settings_are_422_naming_the_field(size: int, overlap: int, splitter: str, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        split([Page("text")], size=size, overlap=overlap, splitter=splitter)  # type: ignore[arg-type]
    assert caught.value.http_status == 422 and caught.value.errors[0].loc == ("body", field)

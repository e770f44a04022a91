"""Pages of text → the chunks a knowledge base embeds and indexes.

Every chunk is a slice of one page (chunks never span pages; `page_number` is kept), stripped of surrounding
whitespace, at most `size` characters long; together the chunks of a page cover all of its text, and the same
input always gives the same chunks, so a re-ingest after a restart finds the chunks it already stored by hash.

    recursive  cut at the coarsest boundary that makes pieces fit: blank line, line, sentence, word, character
               (LangChain's RecursiveCharacterTextSplitter), then pack whole pieces into chunks up to `size`
    sentence   pack whole sentences (a blank line also ends one); a sentence longer than `size` is cut at words
    paragraph  one paragraph per chunk; a paragraph longer than `size` is cut like `recursive`
    token      `size` and `overlap` count whitespace-separated words, a cheap proxy for model tokens that needs no
               tokenizer (a word longer than 32 characters counts once per 32); real token counts run ~1.3x higher

Overlap (characters; words for `token`): each chunk after the first of a page starts up to `overlap` characters
before the previous one ended, at the earliest piece, sentence or word boundary in that window that still lets
the chunk take in new text; when no boundary fits, the chunk starts without overlap. Text cut at words is cut
into pieces of at most `size - overlap`, so that a piece and its overlap fit in one chunk.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from typing import get_args

from portico.core.errors import FieldError, ValidationFailed
from portico.core.knowledge import ChunkText, Page, Splitter

Span = tuple[int, int]

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_LINE = re.compile(r"\n\s*")
_SENTENCE = re.compile(r"[.!?…][\"'”’)\]]*\s+|[。！？]\s*|\n[ \t]*\n\s*")
_WORD = re.compile(r"\s+")
_LEVELS: dict[str, tuple[re.Pattern[str], ...]] = {
    "recursive": (_PARAGRAPH, _LINE, _SENTENCE),
    "sentence": (_SENTENCE,),
    "paragraph": (_PARAGRAPH, _LINE, _SENTENCE),
}  # then words (`_words`), then characters
_TOKEN = re.compile(r"\S{1,32}")


def split(pages: Sequence[Page], *, size: int, overlap: int, splitter: Splitter) -> list[ChunkText]:
    """The chunks of `pages` in order, numbered from 0 across pages. Raises `ValidationFailed` (422) for a size,
    overlap or splitter a knowledge base should never have been created with."""
    check_settings(size=size, overlap=overlap, splitter=splitter)
    chunks: list[ChunkText] = []
    for page in pages:
        text = page.text
        for start, end in spans(text, size=size, overlap=overlap, splitter=splitter):
            chunks.append(ChunkText(text[start:end], len(chunks), page.page_number))
    return chunks


def check_settings(*, size: int, overlap: int, splitter: str) -> None:
    """The chunking settings a knowledge base may hold; the admin API calls it when a base is created."""
    problems: list[FieldError] = []
    if size <= 0:
        problems.append(FieldError(("body", "chunk_size"), "chunk_size must be greater than 0"))
    if overlap < 0 or (size > 0 and overlap >= size):
        problems.append(FieldError(("body", "chunk_overlap"), "chunk_overlap must be at least 0 and below chunk_size"))
    if splitter not in get_args(Splitter):
        allowed = ", ".join(get_args(Splitter))
        problems.append(FieldError(("body", "splitter"), f"splitter must be one of: {allowed}"))
    if problems:
        raise ValidationFailed(problems)


def spans(text: str, *, size: int, overlap: int, splitter: str) -> list[Span]:
    """(start, end) of each chunk of one page's text."""
    if splitter == "token":
        return _token_spans(text, size, overlap)
    pieces: list[Span] = []
    breaks: set[int] = set()
    _cut(text, (0, len(text)), _LEVELS[splitter], (size, overlap), pieces, breaks, alone=splitter == "paragraph")
    return _pack(text, pieces, breaks, size, overlap)


def _cut(
    text: str,
    span: Span,
    levels: Sequence[re.Pattern[str]],
    limits: tuple[int, int],
    out: list[Span],
    breaks: set[int],
    *,
    alone: bool = False,
) -> None:
    """Cut `span` at the first level's boundaries, recursing into pieces still longer than the size; below the
    last level, at words (`_words`). Pieces are stripped, never empty, and appended to `out`.
    `breaks` collects the indexes of pieces that must start a chunk: the pieces of a piece that was too long
    are packed among themselves only (as LangChain does), and with `alone` every top-level piece stands alone."""
    size, overlap = limits
    start, end = _strip(text, *span)
    if start >= end:
        return
    if end - start <= size:
        out.append((start, end))
        return
    if not levels:
        _words(text, start, end, size - overlap, out)
        return
    bounds, position = [], start
    for match in levels[0].finditer(text, start, end):
        bounds.append((position, match.start() + len(match.group().rstrip())))
        position = match.end()
    bounds.append((position, end))
    for bound in bounds:
        piece = _strip(text, *bound)
        if piece[0] >= piece[1]:
            continue
        if piece[1] - piece[0] <= size and len(bounds) > 1:
            if alone:
                breaks.add(len(out))
            out.append(piece)
        else:
            breaks.add(len(out))
            _cut(text, piece, levels[1:], limits, out, breaks)
            breaks.add(len(out))


def _words(text: str, start: int, end: int, limit: int, out: list[Span]) -> None:
    """Pieces of at most `limit` (= size - overlap, so that a piece plus an overlap still fits a chunk) cut at the
    last whitespace that fits, or mid-word when a word is longer than that. Greedy here rather than one piece per
    word: a megabyte without a sentence end is 200,000 words, and packing them one by one took seconds."""
    gaps = [(m.start(), m.end()) for m in _WORD.finditer(text, start, end)]
    gap_starts = [gap[0] for gap in gaps]
    position = start
    while position < end:
        if end - position <= limit:
            out.append((position, end))
            return
        fit = bisect.bisect_right(gap_starts, position + limit) - 1
        if fit >= 0 and gap_starts[fit] > position:
            out.append((position, gap_starts[fit]))
            position = gaps[fit][1]
        else:
            out.append((position, position + limit))
            position = _strip(text, position + limit, end)[0]


def _pack(text: str, pieces: Sequence[Span], breaks: set[int], size: int, overlap: int) -> list[Span]:
    """Greedy: each chunk takes as many whole pieces as fit in `size` (never past a break), starting in the
    previous chunk's tail when it continues the same run of pieces."""
    chunks: list[Span] = []
    index, start = 0, pieces[0][0] if pieces else 0
    while index < len(pieces):
        last = index
        while last + 1 < len(pieces) and last + 1 not in breaks and pieces[last + 1][1] - start <= size:
            last += 1
        chunks.append((start, pieces[last][1]))
        index = last + 1
        if index < len(pieces):
            start = pieces[index][0]
            if index not in breaks:
                start = _overlap_start(text, pieces, chunks[-1], pieces[index][1] - size, overlap) or start
    return chunks


def _overlap_start(text: str, pieces: Sequence[Span], chunk: Span, earliest_fit: int, overlap: int) -> int | None:
    """The earliest boundary in the last `overlap` characters of `chunk` at which the next chunk still fits:
    a piece start if any, else a sentence start, else a word start, else (a tail without any whitespace, cut
    mid-word already) the earliest character; None = no overlap."""
    if overlap <= 0:
        return None
    low = max(chunk[1] - overlap, chunk[0] + 1, earliest_fit)
    if low >= chunk[1]:
        return None
    before = max(low - 1, 0)
    for candidates in (
        (s for s, _ in pieces[bisect.bisect_left(pieces, (low, -1)) :] if s < chunk[1]),
        (m.end() for m in _SENTENCE.finditer(text, before, chunk[1]) if low <= m.end() < chunk[1]),
        (m.end() for m in _WORD.finditer(text, before, chunk[1]) if low <= m.end() < chunk[1]),
    ):
        found = next(iter(candidates), None)
        if found is not None:
            return found
    return low if not _WORD.search(text, before, chunk[1]) else None


def _token_spans(text: str, size: int, overlap: int) -> list[Span]:
    tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
    spans_: list[Span] = []
    step = size - overlap
    for first in range(0, len(tokens), step):
        window = tokens[first : first + size]
        spans_.append((window[0][0], window[-1][1]))
        if first + size >= len(tokens):
            break
    return spans_


def _strip(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end

"""Markdown and HTML → the plain text a datasource's chunks are cut from.

Both keep every word a reader sees and drop what only a renderer needs: Markdown loses its markers (`#`, `**`,
link targets, fences) but keeps headings, link texts, image alt texts and code; HTML loses `script`, `style`,
`nav` (and the like) and keeps text, with a line break wherever a block element ends so that paragraphs stay
paragraphs for the splitter. Stdlib only (`re`, `html.parser`); neither function raises on malformed input.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FENCE = re.compile(r"^[ \t]{0,3}(```+|~~~+)")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^[ \t]{0,3}(=+|-+)[ \t]*$")
_RULE = re.compile(r"^[ \t]{0,3}([-*_])([ \t]*\1){2,}[ \t]*$")
_REFERENCE_DEF = re.compile(r"^[ \t]{0,3}\[[^\]]+\]:[ \t]*\S+.*$")
_QUOTE = re.compile(r"^[ \t]{0,3}(>[ \t]?)+")
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+(\[[ xX]\][ \t]+)?")
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_INLINE = (
    (re.compile(r"<!--.*?-->", re.S), ""),
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"!\[([^\]]*)\]\[[^\]]*\]"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\((?:[^()]|\([^)]*\))*\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),
    (re.compile(r"<((?:https?|mailto|ftp):[^>\s]+)>"), r"\1"),
    (re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>"), ""),
    (re.compile(r"(`+)(.+?)\1"), r"\2"),
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    (re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"), r"\1"),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"\1"),
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])"), r"\1"),
)


def markdown_to_text(source: str) -> str:
    """Headings become their own lines of text, lists keep one item per line, code blocks keep their code,
    tables keep their cells (`a | b`); YAML front matter, link targets and reference definitions go."""
    lines: list[str] = []
    fence: str | None = None
    for line in _FRONT_MATTER.sub("", source).split("\n"):
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
            else:
                lines.append(line)
            continue
        if opened:
            fence = opened.group(1)
            continue
        lines.append(_markdown_line(line, lines))
    return "\n".join(lines)


def _markdown_line(line: str, before: list[str]) -> str:
    if _SETEXT.match(line) and before and before[-1].strip():
        return ""
    if _RULE.match(line) or _REFERENCE_DEF.match(line) or (_TABLE_RULE.match(line) and "-" in line and "|" in line):
        return ""
    heading = _HEADING.match(line)
    if heading:
        line = heading.group(1)
    line = _BULLET.sub(r"\1", _QUOTE.sub("", line))
    if line.lstrip().startswith("|") and line.rstrip().endswith("|"):
        line = " | ".join(cell.strip() for cell in line.strip()[1:-1].split("|"))
    for pattern, replacement in _INLINE:
        line = pattern.sub(replacement, line)
    return line


_SKIPPED = frozenset({"script", "style", "nav", "noscript", "template", "svg", "canvas", "iframe", "object", "head"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "dialog", "div", "dl",
        "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "li", "main", "ol", "p", "pre", "section", "summary", "table", "title", "tr", "ul",
    }
)  # fmt: skip
_PARAGRAPHS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "pre", "blockquote", "ul", "ol", "dl"})
_CELLS = frozenset({"td", "th"})
_LINE_BREAK, _PARAGRAPH_BREAK = "\x01", "\x02"  # block ends, merged after parsing: any paragraph end wins
_BREAKS = re.compile(r"[ \t]*[\x01\x02][\x01\x02\s]*")
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})


class _TextExtractor(HTMLParser):
    """Collects visible text. `head` is skipped except for `title`, which becomes the first line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping: list[str] = []
        self.in_title = False
        self.in_pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        hidden = any(name == "hidden" or (name == "aria-hidden" and value == "true") for name, value in attrs)
        if (tag in _SKIPPED or hidden or self.skipping) and tag not in _VOID:
            self.skipping.append(tag)
            return
        if tag == "pre":
            self.in_pre += 1
        if tag in _BLOCKS:
            self.parts.append(_LINE_BREAK)
        elif tag in _CELLS:
            self.parts.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
            self.parts.append(_LINE_BREAK)
        if self.skipping:
            if tag in self.skipping:
                while self.skipping.pop() != tag:
                    pass
            return
        if tag == "pre":
            self.in_pre = max(0, self.in_pre - 1)
        if tag in _BLOCKS:
            self.parts.append(_PARAGRAPH_BREAK if tag in _PARAGRAPHS else _LINE_BREAK)

    def handle_data(self, data: str) -> None:
        if self.skipping and not self.in_title:
            return
        self.parts.append(data if self.in_pre else re.sub(r"\s+", " ", data))


def html_to_text(source: str) -> str:
    """Visible text with block breaks; table rows become `a | b` lines, entities are decoded."""
    extractor = _TextExtractor()
    extractor.feed(source)
    extractor.close()
    text = _BREAKS.sub(lambda m: "\n\n" if _PARAGRAPH_BREAK in m.group() else "\n", "".join(extractor.parts))
    lines = [line.strip(" \t").removeprefix("| ").strip(" \t") for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))

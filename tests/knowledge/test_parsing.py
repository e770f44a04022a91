"""`parse_document` on real files of each supported type, and the errors a bad upload gets."""

from __future__ import annotations

import pytest

from portico.core.errors import RequestError, UnsupportedMediaType
from portico.core.knowledge import Page
from portico.knowledge.parsing import detect_file_type, parse_document
from tests.knowledge.pdf_files import encrypt_pdf, make_pdf


def test_plain_text_keeps_its_words_and_drops_bom_and_crlf() -> None:
    content = "\ufeffFirst line\r\nsecond line   \r\n\r\n\r\n\r\nthird\x00 paragraph\n".encode()
    assert parse_document("notes.txt", content) == [Page("First line\nsecond line\n\nthird paragraph")]


def test_utf16_with_bom_and_a_declared_charset_are_decoded() -> None:
    assert parse_document("a.txt", "Grüße aus Köln".encode("utf-16")) == [Page("Grüße aus Köln")]
    latin = "Café crème".encode("latin-1")
    assert parse_document("a.txt", latin, "text/plain; charset=latin-1") == [Page("Café crème")]


def test_bytes_that_are_not_utf8_are_a_clear_400() -> None:
    with pytest.raises(RequestError) as caught:
        parse_document("report.txt", b"caf\xe9 \xff\xfe broken")
    assert caught.value.http_status == 400 and caught.value.code == "unreadable_document"
    assert "report.txt" in caught.value.message and "UTF-8" in caught.value.message
    with pytest.raises(RequestError) as unknown:
        parse_document("a.txt", b"abc", "text/plain; charset=klingon-7")
    assert unknown.value.http_status == 400 and "klingon-7" in unknown.value.message


@pytest.mark.parametrize("content", [b"", b"   \n\t\r\n", b"\xef\xbb\xbf  \n"])
def test_empty_or_blank_documents_are_400_empty_document(content: bytes) -> None:
    with pytest.raises(RequestError) as caught:
        parse_document("blank.md", content)
    assert caught.value.http_status == 400 and caught.value.code == "empty_document"


def test_markdown_keeps_the_text_and_drops_the_markup() -> None:
    source = """---
title: Front matter is metadata
---
# Refund policy

Setext heading
==============

Refunds take **5 days** and _apply_ to [every order](https://shop.example/orders "orders").
See ![the chart](chart.png) and `refund_window` or <https://shop.example>.

> Quoted wisdom
- first item
* [x] done item
1. numbered stays

| Plan | Price |
|:-----|------:|
| Pro  | $10   |

```python
def refund(order_id):
    return order_id * 2
```
***
[orders]: https://shop.example/orders
snake_case_name and 2*3*4 stay as they are <!-- hidden -->
"""
    text = parse_document("policy.md", source.encode())[0].text
    for kept in (
        "Refund policy",
        "Setext heading",
        "Refunds take 5 days and apply to every order.",
        "See the chart and refund_window or https://shop.example.",
        "Quoted wisdom",
        "first item",
        "done item",
        "1. numbered stays",
        "Plan | Price",
        "Pro | $10",
        "def refund(order_id):\n    return order_id * 2",
        "snake_case_name and 2*3*4 stay as they are",
    ):
        assert kept in text, kept
    for dropped in ("Front matter", "**", "](", "chart.png", "```", "===", "|:--", "[orders]", "hidden", "# ", "> "):
        assert dropped not in text, dropped


def test_html_keeps_visible_text_with_block_breaks() -> None:
    source = """<!doctype html><html><head><title>Shop &amp; Co</title>
<style>body { color: red }</style><script>var secret = "do not index";</script></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<h1>Returns</h1><p>Items can be   returned
within <b>30</b>&nbsp;days.</p><p>Second&#33; paragraph</p>
<ul><li>Receipt</li><li>Original box</li></ul>
<div hidden>Invisible text</div><table><tr><th>Size</th><th>Fee</th></tr><tr><td>S</td><td>$1</td></tr></table>
<pre>  keep
    indentation-free code</pre><footer>Contact us<br>today</footer></body></html>"""
    text = parse_document("page.html", source.encode())[0].text
    assert text.startswith("Shop & Co\n")
    assert "Returns\n\nItems can be returned within 30 days.\n\nSecond! paragraph" in text
    assert "Receipt\nOriginal box" in text and "Size | Fee\nS | $1" in text and "Contact us\ntoday" in text
    for dropped in ("color: red", "do not index", "Home", "About", "Invisible", "<"):
        assert dropped not in text, dropped


def test_html_charset_from_meta_is_honoured() -> None:
    source = '<html><head><meta charset="iso-8859-1"></head><body><p>Crème brûlée</p></body></html>'
    assert parse_document("menu.htm", source.encode("latin-1")) == [Page("Crème brûlée")]


def test_pdf_gives_one_page_per_pdf_page_and_skips_blank_ones() -> None:
    pdf = make_pdf(["Warranty terms (page one)\nTwo years on parts", "", "Shipping is free over $50"])
    assert parse_document("terms.pdf", pdf) == [
        Page("Warranty terms (page one)\nTwo years on parts", 1),
        Page("Shipping is free over $50", 3),
    ]


def test_pdf_encrypted_with_an_empty_user_password_still_reads() -> None:
    pdf = encrypt_pdf(make_pdf(["Owner-protected but readable"]), user_password="")
    assert parse_document("locked.pdf", pdf) == [Page("Owner-protected but readable", 1)]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (encrypt_pdf(make_pdf(["secret"]), user_password="hunter2"), "password-protected"),
        (b"%PDF-1.4\nthis is not really a pdf", "not a readable PDF"),
        (make_pdf(["truncated document"])[:150], "not a readable PDF"),
    ],
)
def test_encrypted_or_corrupt_pdf_is_a_clear_422(content: bytes, words: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_document("bad.pdf", content)
    assert caught.value.http_status == 422 and words in caught.value.message and "bad.pdf" in caught.value.message


def test_pdf_with_only_blank_pages_is_empty() -> None:
    with pytest.raises(RequestError) as caught:
        parse_document("scan.pdf", make_pdf(["", ""]))
    assert caught.value.code == "empty_document" and caught.value.http_status == 400


def test_type_comes_from_the_content_type_then_the_extension() -> None:
    assert detect_file_type("x.MD") == "md"
    assert detect_file_type("upload", "text/html; charset=utf-8") == "html"
    assert detect_file_type("notes", "md") == "md"
    assert detect_file_type("doc.pdf", "application/octet-stream") == "pdf"
    markdown_as_text = parse_document("readme", b"# Title\n**bold**", "text/plain")
    assert markdown_as_text == [Page("# Title\n**bold**")]


@pytest.mark.parametrize(
    ("name", "content_type"), [("photo.png", "image/png"), ("data.docx", None), ("noextension", None)]
)
def test_unsupported_types_are_415_naming_the_file(name: str, content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        parse_document(name, b"\x89PNG\r\n", content_type)
    assert caught.value.http_status == 415 and name in caught.value.message and ".pdf" in caught.value.message

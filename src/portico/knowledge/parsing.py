"""An uploaded datasource's bytes → its pages of text: plain text, Markdown, HTML and PDF.

The type comes from a recognised `content_type` (a MIME type, or one of the short names `txt md html pdf` that
the JSON upload's `file_type` uses), else from the file name's extension; anything else is a 415 naming what was
sent. A document that yields no text is a 400 (`empty_document`), bytes that are not text in their declared
encoding a 400 (`unreadable_document`), a corrupt or password-protected PDF a 422: nothing is stored for any of
them. Parsing is CPU work (a PDF especially): callers on the event loop run it in a thread.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable
from pathlib import PurePath

from portico.core.errors import RequestError, UnsupportedMediaType
from portico.core.knowledge import Page
from portico.knowledge.markup import html_to_text, markdown_to_text

FILE_TYPES: dict[str, str] = {
    "txt": "txt", "text": "txt", "md": "md", "markdown": "md", "mdown": "md", "mkd": "md",
    "html": "html", "htm": "html", "xhtml": "html", "pdf": "pdf",
}  # fmt: skip
"""Extension or short name → the datasource's `file_type`."""

MEDIA_TYPES: dict[str, str] = {
    "text/plain": "txt", "text/markdown": "md", "text/x-markdown": "md", "text/html": "html",
    "application/xhtml+xml": "html", "application/pdf": "pdf", "application/x-pdf": "pdf",
}  # fmt: skip
SUPPORTED = ", ".join(sorted({f".{ext}" for ext in FILE_TYPES}))


class UnreadableDocument(RequestError):
    """The file is of a supported type but its content cannot be read (corrupt, encrypted, wrong encoding)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message, code="unreadable_document", param="file")
        self.http_status = status


def detect_file_type(name: str, content_type: str | None = None) -> str:
    """`txt`, `md`, `html` or `pdf`; raises `UnsupportedMediaType` (415) for anything else."""
    declared = (content_type or "").split(";")[0].strip().lower()
    found = MEDIA_TYPES.get(declared) or FILE_TYPES.get(declared)
    if found:
        return found
    extension = PurePath(name).suffix.lower().lstrip(".")
    found = FILE_TYPES.get(extension)
    if found:
        return found
    sent = f"'{name}'" + (f" ({declared})" if declared and declared != "application/octet-stream" else "")
    raise UnsupportedMediaType(f"Cannot read {sent}: supported file types are {SUPPORTED}.")


def parse_document(name: str, content: bytes, content_type: str | None = None) -> list[Page]:
    """The pages of text in `content`, blank pages left out; at least one page or an error."""
    file_type = detect_file_type(name, content_type)
    if not content.strip():
        raise RequestError(f"'{name}' is empty.", code="empty_document", param="file")
    if file_type == "pdf":
        pages = _pdf_pages(name, content)
    else:
        text = _decode(name, content, content_type)
        convert: Callable[[str], str] = {"md": markdown_to_text, "html": html_to_text}.get(file_type, str)
        pages = [Page(_tidy(convert(text)))]
    pages = [page for page in pages if page.text.strip()]
    if not pages:
        raise RequestError(f"'{name}' contains no text to index.", code="empty_document", param="file")
    return pages


def _decode(name: str, content: bytes, content_type: str | None) -> str:
    """UTF-8 (a BOM tolerated), UTF-16 with a BOM, or the charset the content type or an HTML `<meta>` names."""
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        charset = re.search(r"charset=[\"']?([\w.:-]+)", content_type or "", re.I) or re.search(
            rb"<meta[^>]+charset=[\"']?([\w.:-]+)", content[:2048], re.I
        )
        declared = charset.group(1) if charset else "utf-8"
        encoding = declared.decode("ascii") if isinstance(declared, bytes) else declared
        if encoding.lower().replace("_", "-") in {"utf-8", "utf8"}:
            encoding = "utf-8-sig"
    try:
        return content.decode(encoding)
    except LookupError:
        raise UnreadableDocument(f"'{name}' declares an unknown character set '{encoding}'.") from None
    except UnicodeDecodeError as error:
        raise UnreadableDocument(
            f"'{name}' is not valid {encoding.removesuffix('-sig').upper()} text "
            f"(byte {error.start}); upload text files as UTF-8."
        ) from None


def _tidy(text: str) -> str:
    """One newline convention, no NUL (PostgreSQL text refuses it), no trailing spaces, at most one blank line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").replace("\f", "\n\n")
    text = re.sub(r"[ \t\u00a0]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _pdf_pages(name: str, content: bytes) -> list[Page]:
    """One `Page` per PDF page (numbered from 1) via pypdf; an empty user password is tried on encrypted files,
    as PDF readers do, so that "no-copy" protected documents still read."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PyPdfError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pypdf warns about each repaired flaw of a slightly broken file
        try:
            reader = PdfReader(io.BytesIO(content), strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                raise UnreadableDocument(f"'{name}' is a password-protected PDF; upload it unencrypted.", status=422)
            return [Page(_tidy(page.extract_text() or ""), number) for number, page in enumerate(reader.pages, 1)]
        except UnreadableDocument:
            raise
        except FileNotDecryptedError:
            raise UnreadableDocument(
                f"'{name}' is a password-protected PDF; upload it unencrypted.", status=422
            ) from None
        except (PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, NotImplementedError) as error:
            reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            raise UnreadableDocument(f"'{name}' is not a readable PDF ({reason}).", status=422) from None

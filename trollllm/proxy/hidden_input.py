"""Input the provider bills that no byte of the request shows, bounded from what the provider documents.

The hold bounds a request's input by its bytes (a token is at least one byte); on top of that, with
margin over the figures each provider publishes:

- Anthropic's tool-use system prompt, added to every request with tools (at most 346 tokens in its tables).
- Anthropic-defined tools: `bash_*` 245 tokens, `text_editor_*` 700, `computer_*` 735 plus a system prompt
  of up to 499.
- PDFs sent inline (Anthropic `document` blocks, OpenAI `file` parts with `file_data`): each page is billed
  as an image (at most ~1,600 tokens) plus its text (1,500-3,000 tokens a page), whatever the file's size;
  the pages are counted from the file. One whose pages cannot be counted cheaply (an unreadable or
  oversized object stream, another filter) is held as the most pages a provider takes in one request.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from typing import Any

from trollllm.translate.translation import ANTHROPIC_TOOL_PROMPT_TOKENS
from trollllm.wire import WireFormat

# Anthropic-defined tool type prefix -> tokens its definition adds (documented figure, with margin).
ANTHROPIC_DEFINED_TOOL_TOKENS = {"bash_": 300, "text_editor_": 800, "computer_": 1_400}
PDF_PAGE_TOKENS = 5_000
"""One PDF page: its image (≤ ~1,600 tokens) and its text (up to ~3,000), with margin."""
PDF_MAX_PAGES = 600
"""Pages held for a PDF whose pages cannot be counted: the most any provider takes in one request."""
_MAX_INFLATED_BYTES = 16 * 1024 * 1024  # object streams decompressed to count pages, at most

_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_STREAM = re.compile(rb"stream\r?\n")
_PDF_DATA_URL = "data:application/pdf;base64,"
_BASE64_PDF = ("base64", "application/pdf")


def hidden_input_tokens(body: dict[str, Any], wire: WireFormat) -> int:
    """Tokens the provider of `wire` bills for `body` beyond its bytes: tool prompts and PDF pages."""
    total = 0
    tools = body.get("tools")
    if wire is WireFormat.ANTHROPIC and isinstance(tools, list) and tools:
        total += ANTHROPIC_TOOL_PROMPT_TOKENS
        for tool in tools:
            kind = tool.get("type") if isinstance(tool, dict) else None
            if isinstance(kind, str):
                total += next((n for p, n in ANTHROPIC_DEFINED_TOOL_TOKENS.items() if kind.startswith(p)), 0)
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):
                total += _pdf_tokens(content, wire)
    return total


def _pdf_tokens(parts: list[Any], wire: WireFormat) -> int:
    total = 0
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        data: object = None
        if wire is WireFormat.ANTHROPIC and kind == "document":
            source = part.get("source")
            if isinstance(source, dict) and (source.get("type"), source.get("media_type")) == _BASE64_PDF:
                data = source.get("data")
        elif wire is WireFormat.ANTHROPIC and kind == "tool_result" and isinstance(part.get("content"), list):
            total += _pdf_tokens(part["content"], wire)
        elif wire is WireFormat.OPENAI and kind == "file" and isinstance(part.get("file"), dict):
            file_data = part["file"].get("file_data")
            if isinstance(file_data, str) and file_data.startswith(_PDF_DATA_URL):
                data = file_data[len(_PDF_DATA_URL) :]
        if isinstance(data, str):
            total += pdf_pages(data) * PDF_PAGE_TOKENS
    return total


def pdf_pages(data: str) -> int:
    """The pages of a base64 PDF: its page objects, also those inside object streams; `PDF_MAX_PAGES`
    when they cannot be counted (not base64, no page found, an object stream that does not inflate)."""
    try:
        pdf = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return PDF_MAX_PAGES
    pages = len(_PAGE.findall(pdf))
    if b"/ObjStm" in pdf:  # page objects may sit compressed in object streams (PDF 1.5+)
        inflated = _inflated_streams(pdf)
        if inflated is None:
            return PDF_MAX_PAGES
        pages += len(_PAGE.findall(inflated))
    return pages or PDF_MAX_PAGES


def _inflated_streams(pdf: bytes) -> bytes | None:
    """The file's object streams, inflated and joined (None when one does not inflate, or past
    `_MAX_INFLATED_BYTES`). Other streams (page contents, images) are skipped: they hold no page object."""
    out: list[bytes] = []
    budget = _MAX_INFLATED_BYTES
    for match in _STREAM.finditer(pdf):
        header = pdf[max(0, match.start() - 512) : match.start()]
        if b"/ObjStm" not in header[header.rfind(b" obj") :]:
            continue
        end = pdf.find(b"endstream", match.end())
        if end < 0:
            return None
        inflater = zlib.decompressobj()
        try:
            chunk = inflater.decompress(pdf[match.end() : end], budget + 1)
        except zlib.error:
            return None
        if len(chunk) > budget or inflater.unconsumed_tail:
            return None
        budget -= len(chunk)
        out.append(chunk)
    return b"\n".join(out)

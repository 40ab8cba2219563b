"""Input the mock bills beyond a request's words, as the providers document it.

- Anthropic: a tool-use system prompt of 346 tokens with any tools; Anthropic-defined tools add their
  definitions: `bash_*` 245 tokens, `text_editor_*` 700, `computer_*` 735 plus a 499-token system prompt.
- Both formats: every page of an inline PDF (Anthropic `document` block, OpenAI `file` part with
  `file_data`) is billed as an image of 1,600 tokens plus 3,000 tokens of text (the top of the documented
  1,500-3,000 a page), however small the file.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Mapping
from typing import Any

from trollllm.mockupstream.controls import MockRequestError

ANTHROPIC_TOOL_USE_PROMPT_TOKENS = 346
ANTHROPIC_DEFINED_TOOL_TOKENS = {"bash_": 245, "text_editor_": 700, "computer_": 735 + 499}
PDF_PAGE_IMAGE_TOKENS = 1_600
PDF_PAGE_TEXT_TOKENS = 3_000

_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\n?endstream", re.DOTALL)
_PDF_DATA_URL = "data:application/pdf;base64,"


def anthropic_hidden_tokens(body: Mapping[str, Any]) -> int:
    """What an Anthropic messages request is billed beyond its words."""
    total = 0
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        total += ANTHROPIC_TOOL_USE_PROMPT_TOKENS
        for tool in tools:
            kind = tool.get("type") if isinstance(tool, Mapping) else None
            for prefix, tokens in ANTHROPIC_DEFINED_TOOL_TOKENS.items():
                if isinstance(kind, str) and kind.startswith(prefix):
                    total += tokens
    for part in _parts(body):
        source = part.get("source")
        if part.get("type") != "document" or not isinstance(source, Mapping):
            continue
        if source.get("type") == "base64" and source.get("media_type") == "application/pdf":
            total += pdf_tokens(str(source.get("data", "")))
    return total


def openai_hidden_tokens(body: Mapping[str, Any]) -> int:
    """What an OpenAI chat completions request is billed beyond its words."""
    total = 0
    for part in _parts(body):
        file = part.get("file")
        if part.get("type") == "file" and isinstance(file, Mapping):
            data = file.get("file_data")
            if isinstance(data, str) and data.startswith(_PDF_DATA_URL):
                total += pdf_tokens(data[len(_PDF_DATA_URL) :])
    return total


def pdf_tokens(data: str) -> int:
    """A base64 PDF's billed tokens: per page, its image and its text."""
    try:
        pdf = base64.b64decode(data)
    except binascii.Error as exc:
        raise MockRequestError("a PDF's data is not base64") from exc
    pages = len(_PAGE.findall(pdf))
    for stream in _STREAM.findall(pdf):
        try:
            pages += len(_PAGE.findall(zlib.decompress(stream)))
        except zlib.error:
            continue
    return pages * (PDF_PAGE_IMAGE_TOKENS + PDF_PAGE_TEXT_TOKENS)


def _parts(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every content part of every message, those nested in Anthropic `tool_result` blocks included."""
    found: list[Mapping[str, Any]] = []
    messages = body.get("messages")
    pending = (
        [m.get("content") for m in messages if isinstance(m, Mapping)] if isinstance(messages, list) else []
    )
    while pending:
        content = pending.pop()
        if isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping):
                    found.append(part)
                    if part.get("type") == "tool_result":
                        pending.append(part.get("content"))
    return found

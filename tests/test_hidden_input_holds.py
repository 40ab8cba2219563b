"""The input part of a hold is an upper bound also for input the request's bytes do not show (issue 29,
item 2; SPEC §4 Charging): Anthropic's tool-use system prompt, Anthropic-defined tools and inline PDFs,
which the mock provider bills as the providers document. Each request is held at least what it costs."""

from __future__ import annotations

import base64
import zlib
from decimal import Decimal
from typing import Any

import pytest
from helpers import register_user
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World

from trollllm.proxy.hidden_input import PDF_MAX_PAGES, pdf_pages


def _pdf(pages: int, *, object_stream: bool = False) -> bytes:
    """A small PDF of `pages` pages sharing one content stream; with `object_stream`, its page objects
    are compressed in an object stream (PDF 1.5), as most writers do today."""
    kids = " ".join(f"{10 + i} 0 R" for i in range(pages))
    head = (
        b"%PDF-1.7\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
        + f"2 0 obj <</Type /Pages /Count {pages} /Kids [{kids}]>> endobj\n".encode()
        + b"3 0 obj <</Length 21>> stream\nBT (Hello) Tj ET\n1 0 0\nendstream endobj\n"
    )
    page_objects = [b"<</Type /Page /Parent 2 0 R /Contents 3 0 R>>" for _ in range(pages)]
    if not object_stream:
        body = b"".join(
            f"{10 + i} 0 obj ".encode() + page + b" endobj\n" for i, page in enumerate(page_objects)
        )
        return head + body + b"%%EOF\n"
    packed = zlib.compress(b"\n".join(page_objects), 9)
    stream = (
        f"4 0 obj <</Type /ObjStm /N {pages} /First 0 /Filter /FlateDecode /Length {len(packed)}>> stream\n"
    )
    return head + stream.encode() + packed + b"\nendstream endobj\n%%EOF\n"


def _b64(pdf: bytes) -> str:
    return base64.b64encode(pdf).decode()


async def _held_and_charged(world: World, path: str, body: dict[str, Any]) -> tuple[Decimal, Decimal]:
    """(the hold this request needs, from the 402 of a user who cannot cover it; what it cost a user who
    can, from the mock's usage)."""
    poor = await register_user(world.gateway, "poor")
    await world.admin_call("PATCH", "/api/admin/users/poor", json={"plan": "pro-troll"})
    refused = await world.gateway.client.post(path, headers=_auth(path, poor.api_key), json=body)
    assert refused.status_code == 402, refused.text
    error = refused.json()["error"]
    answered = await world.gateway.client.post(path, headers=_auth(path, world.user.api_key), json=body)
    assert answered.status_code == 200, answered.text
    return Decimal(str(error["requiredUsd"])), Decimal(answered.headers["x-trollllm-cost-usd"])


def _auth(path: str, key: str) -> dict[str, str]:
    return {"x-api-key": key} if path == "/v1/messages" else {"Authorization": f"Bearer {key}"}


def _messages(content: Any) -> dict[str, Any]:
    return {"model": ANTHROPIC_MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": content}]}


async def test_a_native_anthropic_request_with_tools_holds_the_tool_use_system_prompt(world: World) -> None:
    body = {**_messages("hi"), "tools": [{"name": "f", "input_schema": {"type": "object"}}]}
    held, charged = await _held_and_charged(world, "/v1/messages", body)
    assert held >= charged


async def test_anthropic_defined_tools_are_held_at_their_documented_size(world: World) -> None:
    tools = [
        {"type": "computer_20250124", "name": "computer", "display_width_px": 1024, "display_height_px": 768},
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250124", "name": "str_replace_editor"},
    ]
    held, charged = await _held_and_charged(world, "/v1/messages", {**_messages("hi"), "tools": tools})
    assert held >= charged


@pytest.mark.parametrize("object_stream", [False, True], ids=["plain", "object-stream"])
async def test_an_inline_pdf_is_held_per_page_however_small_the_file(
    world: World, object_stream: bool
) -> None:
    pdf = _pdf(100, object_stream=object_stream)
    assert len(pdf) < 8_000
    document = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": _b64(pdf)},
    }
    held, charged = await _held_and_charged(world, "/v1/messages", _messages([document]))
    assert charged > Decimal("1")  # 100 pages, each billed as an image and its text
    assert held >= charged


async def test_a_pdf_file_part_on_chat_completions_is_held_per_page(world: World) -> None:
    part = {
        "type": "file",
        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64," + _b64(_pdf(40))},
    }
    body = {"model": OPENAI_MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": [part]}]}
    held, charged = await _held_and_charged(world, "/v1/chat/completions", body)
    assert charged > Decimal("0.4")
    assert held >= charged


def test_a_pdf_whose_pages_cannot_be_counted_is_held_as_the_most_pages_a_provider_takes() -> None:
    broken = _pdf(3, object_stream=True).replace(b"/FlateDecode", b"/FlateDecode ").replace(b"x\xda", b"xx")
    assert pdf_pages(_b64(broken)) == PDF_MAX_PAGES
    assert pdf_pages(_b64(b"not a pdf")) == PDF_MAX_PAGES
    assert pdf_pages(_b64(_pdf(3, object_stream=True))) == 3

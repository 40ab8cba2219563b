"""Round trips that are lossless (property tests): a request translated to the other format and back is
the request again, and usage translated either way bills the same tokens."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from trollllm.money import TokenUsage, usage_from_anthropic, usage_from_openai
from trollllm.translate.replies import anthropic_usage, openai_usage
from trollllm.translate.to_anthropic import anthropic_request
from trollllm.translate.to_openai import openai_request

text = st.text(max_size=20)
ident = st.from_regex(r"[a-zA-Z0-9_]{1,12}", fullmatch=True)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), text)
json_object = st.dictionaries(ident, st.one_of(json_scalar, st.lists(json_scalar, max_size=3)), max_size=4)
text_parts = st.lists(st.builds(lambda t: {"type": "text", "text": t}, text), min_size=1, max_size=3)
image_part = st.one_of(
    st.builds(lambda u: {"type": "image_url", "image_url": {"url": f"https://img.test/{u}.png"}}, ident),
    st.builds(
        lambda m, d: {"type": "image_url", "image_url": {"url": f"data:image/{m};base64,{d}"}},
        st.sampled_from(["png", "jpeg", "webp"]),
        ident,
    ),
)
user_message = st.builds(
    lambda c: {"role": "user", "content": c},
    st.one_of(text, st.lists(st.one_of(text_parts.map(lambda p: p[0]), image_part), min_size=1, max_size=4)),
)
tool_call = st.builds(
    lambda i, n, a: {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}},
    ident,
    ident,
    json_object.map(lambda o: orjson.dumps(o).decode()),
)
assistant_message = st.one_of(
    st.builds(lambda c: {"role": "assistant", "content": c}, st.one_of(text, text_parts)),
    st.builds(
        lambda c, calls: {"role": "assistant", "content": c, "tool_calls": calls},
        st.one_of(st.none(), text_parts),
        st.lists(tool_call, min_size=1, max_size=3),
    ),
)
tool_message = st.builds(
    lambda i, c: {"role": "tool", "tool_call_id": f"call_{i}", "content": c},
    ident,
    st.one_of(text, text_parts),
)
tool = st.builds(
    lambda n, d, p: {"type": "function", "function": {"name": n, **d, "parameters": p}},
    ident,
    st.one_of(st.just({}), text.map(lambda t: {"description": t})),
    st.builds(
        lambda props: {"type": "object", "properties": props},
        st.dictionaries(ident, st.just({"type": "string"}), max_size=3),
    ),
)


@st.composite
def openai_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """OpenAI requests within what both formats express (tool messages only after a tool-calling turn,
    since a run of tool results is one Anthropic message)."""
    messages: list[dict[str, Any]] = []
    system = draw(st.one_of(st.none(), text, text_parts))
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append(draw(user_message))
    for _ in range(draw(st.integers(0, 3))):
        turn = draw(assistant_message)
        messages.append(turn)
        if "tool_calls" in turn:
            messages.extend(draw(st.lists(tool_message, min_size=1, max_size=3)))
        messages.append(draw(user_message))
    body: dict[str, Any] = {"messages": messages}
    optional = {
        "temperature": st.floats(0, 1),
        "top_p": st.floats(0, 1),
        "stop": st.lists(ident, min_size=1, max_size=4),
        "stream": st.booleans(),
        "tools": st.lists(tool, min_size=1, max_size=3),
        "tool_choice": st.one_of(
            st.sampled_from(["auto", "none", "required"]),
            ident.map(lambda n: {"type": "function", "function": {"name": n}}),
        ),
        "user": ident,
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    if body.get("tool_choice", "auto") != "none" and draw(st.booleans()):
        body["parallel_tool_calls"] = False
        body.setdefault("tool_choice", "auto")
    return body


@given(openai_bodies())
def test_an_openai_request_survives_the_trip_through_anthropic(body: dict[str, Any]) -> None:
    assert openai_request(anthropic_request(body)) == body


@given(openai_bodies())
def test_an_anthropic_request_survives_the_trip_through_openai(openai_body: dict[str, Any]) -> None:
    body = anthropic_request(openai_body)  # every Anthropic request of the lossless shapes
    assert anthropic_request(openai_request(body)) == body


counts = st.integers(0, 10**9)


@given(counts, counts, counts, counts)
def test_anthropic_usage_bills_the_same_tokens_after_translation(i: int, o: int, w: int, h: int) -> None:
    usage = TokenUsage(i, o, cache_write_tokens=w, cache_hit_tokens=h)
    assert usage_from_anthropic(anthropic_usage(usage)) == usage


@given(counts, counts, counts)
def test_openai_usage_bills_the_same_tokens_after_translation(i: int, o: int, h: int) -> None:
    usage = TokenUsage(i, o, cache_hit_tokens=h)
    assert usage_from_openai(openai_usage(usage)) == usage

"""`POST /v1/messages/count_tokens`: Anthropic's token counting, forwarded to the model's provider.

Authenticated, rate limited and gated like `/v1/messages` (`gate.admit_count`), sent with a factory key or
the caller's own provider key; not held, not charged, not in the request history (counting costs
nothing upstream). The answer is the provider's (`{"input_tokens": N}`), relayed as is.
"""

from __future__ import annotations

import orjson

from trollllm.betas.policy import split_betas
from trollllm.byok.routing import send_upstream
from trollllm.crypto import mask_secrets
from trollllm.errors import InvalidRequest, UpstreamError
from trollllm.proxy.decoding import UnreadableEncoding, decode_body
from trollllm.proxy.fastpath import ProxyCall, ProxyResponse, RawResponse
from trollllm.proxy.gate import admit_count, authenticate, presented_key
from trollllm.proxy.requests import parse_model_body
from trollllm.state import AppState
from trollllm.upstream.pool import UpstreamStreamError
from trollllm.wire import WireFormat

COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


async def count_tokens(state: AppState, call: ProxyCall) -> ProxyResponse:
    """Count a messages request's input tokens with the model's provider."""
    caller = await authenticate(state, presented_key(call.headers, WireFormat.ANTHROPIC))
    body, model_id = parse_model_body(call.body)
    if not isinstance(body.get("messages"), list):
        raise InvalidRequest("`messages` is required and must be an array", field="messages")
    betas = split_betas(call.headers.get("anthropic-beta"))
    admission = await admit_count(state, caller, model_id, betas)
    call.model = admission.model.model_id
    headers = [(b"x-request-id", call.request_id.encode()), *admission.rate_limit.raw_headers]
    body["model"] = admission.model.upstream_model
    reply = await send_upstream(
        state,
        admission.own_key,
        admission.model.provider,
        COUNT_TOKENS_PATH,
        orjson.dumps(body),
        call.headers,
        stream=False,
    )
    try:
        raw = decode_body(await reply.read(), reply.headers.get("content-encoding"))
    except (UnreadableEncoding, UpstreamStreamError) as exc:
        raise UpstreamError(headers=admission.rate_limit.headers) from exc
    finally:
        reply.release()
    content_type = reply.headers.get("content-type", "application/json").encode("latin-1")
    if reply.status >= 400:
        raw = mask_secrets(raw.decode(errors="replace")).encode()
    return RawResponse(reply.status, raw, [(b"content-type", content_type), *headers])

"""Which proxy handler serves a path (`trollllm.proxy.fastpath.serve_proxy`): the fixed paths, and the
stored responses under `/v1/responses/{id}`."""

from __future__ import annotations

from trollllm.proxy.embeddings import EMBEDDINGS_ENDPOINTS
from trollllm.proxy.fastpath import ProxyHandler
from trollllm.proxy.responses import PATH, RESPONSE_BY_ID, RESPONSES_ENDPOINTS
from trollllm.proxy.routes import PROXY_ENDPOINTS

_FIXED: dict[str, dict[str, ProxyHandler]] = {
    **PROXY_ENDPOINTS,
    **RESPONSES_ENDPOINTS,
    **EMBEDDINGS_ENDPOINTS,
}
_BY_ID_PREFIX = PATH + "/"
_MAX_ID = 64
BY_ID_PATH = PATH + "/{response_id}"
"""The stored responses' path, as the OpenAPI document writes it."""


def served_endpoints() -> dict[str, dict[str, ProxyHandler]]:
    """Every path the proxy serves (the stored responses as `BY_ID_PATH`) -> method -> handler."""
    return {**_FIXED, BY_ID_PATH: RESPONSE_BY_ID}


def proxy_handlers(path: str) -> dict[str, ProxyHandler] | None:
    """Method -> handler for a proxy path; None for a path the proxy does not serve."""
    handlers = _FIXED.get(path)
    if handlers is None and path.startswith(_BY_ID_PREFIX):
        response_id = path[len(_BY_ID_PREFIX) :]
        if 0 < len(response_id) <= _MAX_ID and "/" not in response_id:
            return RESPONSE_BY_ID
    return handlers

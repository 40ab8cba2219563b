"""Errors on page paths as HTML, never raw JSON: `free_tier_restricted` as the upgrade message (SPEC §8)."""

from __future__ import annotations

from starlette.responses import Response

from trollllm.errors import GatewayError
from trollllm.web.render import page

# Paths served by the pages; everything else (`/api`, `/v1`, health, metrics) answers JSON.
_PAGE_PATHS = (
    "/login",
    "/register",
    "/logout",
    "/dashboard",
    "/admin",
    "/users",
    "/keys",
    "/factory-keys",
    "/proxies",
)


def is_page_path(path: str) -> bool:
    """True for `/` and the page paths, whose errors a browser shows."""
    return path == "/" or any(path == prefix or path.startswith(prefix + "/") for prefix in _PAGE_PATHS)


def error_page(error: GatewayError) -> Response:
    """The error as a page with its status: a friendly upgrade prompt for `free_tier_restricted`."""
    return page(
        "error.html",
        error.status_code,
        upgrade=error.error_type == "free_tier_restricted",
        not_found=error.status_code == 404,
        message=error.message,
    )

"""Every admin page in one router; each page checks the admin itself (pages redirect, they do not 401)."""

from __future__ import annotations

from fastapi import APIRouter

from trollllm.web.admin.pricing import router as pricing_router
from trollllm.web.admin.user_manage import router as user_manage_router
from trollllm.web.admin.users import router as users_router


def build_admin_pages() -> APIRouter:
    """The admin pages' routes."""
    router = APIRouter(include_in_schema=False)
    for page_router in (pricing_router, users_router, user_manage_router):
        router.include_router(page_router)
    return router

"""Every admin page in one router; each page checks the admin itself (pages redirect, they do not 401)."""

from __future__ import annotations

from fastapi import APIRouter

from trollllm.web.admin.audit import router as audit_router
from trollllm.web.admin.factory_key_edit import router as factory_key_edit_router
from trollllm.web.admin.factory_keys import router as factory_keys_router
from trollllm.web.admin.keys import router as keys_router
from trollllm.web.admin.money import router as money_router
from trollllm.web.admin.overview import router as overview_router
from trollllm.web.admin.pricing import router as pricing_router
from trollllm.web.admin.provider_forms import router as provider_forms_router
from trollllm.web.admin.proxies import router as proxies_router
from trollllm.web.admin.user_manage import router as user_manage_router
from trollllm.web.admin.users import router as users_router


def build_admin_pages() -> APIRouter:
    """The admin pages' routes."""
    router = APIRouter(include_in_schema=False)
    for page_router in (
        overview_router,
        pricing_router,
        provider_forms_router,
        users_router,
        user_manage_router,
        keys_router,
        factory_keys_router,
        factory_key_edit_router,
        proxies_router,
        audit_router,
        money_router,
    ):
        router.include_router(page_router)
    return router

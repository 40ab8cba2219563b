"""The one admin router: every `/api/admin/*` route is mounted here behind the admin check.

A route added to any feature's admin router inherits the check; `tests/test_admin_access.py` walks every
route registered under this prefix as anonymous, user and admin.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from trollllm.accounts.sessions import current_admin
from trollllm.admin.keys import router as keys_router
from trollllm.admin.users import router as users_router
from trollllm.audit.routes import router as audit_router
from trollllm.betas.admin_routes import router as betas_router
from trollllm.payments.admin_routes import router as payments_router
from trollllm.plans.admin_routes import router as plans_router
from trollllm.pricing.admin_routes import router as pricing_router
from trollllm.providers.admin_routes import router as providers_router
from trollllm.upstream.admin_routes import router as upstream_router
from trollllm.usage.admin_routes import router as usage_router

ADMIN_PREFIX = "/api/admin"


def build_admin_router() -> APIRouter:
    """All admin routes under `/api/admin`, each requiring an active admin (401 / 403 otherwise)."""
    router = APIRouter(prefix=ADMIN_PREFIX, dependencies=[Depends(current_admin)], tags=["admin"])
    for feature_router in (
        users_router,
        plans_router,
        pricing_router,
        providers_router,
        upstream_router,
        keys_router,
        audit_router,
        usage_router,
        betas_router,
        payments_router,
    ):
        router.include_router(feature_router)
    return router

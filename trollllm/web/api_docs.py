"""`/docs`: Swagger UI 5 from assets the app serves itself (the `swagger-ui-py` package), never a CDN."""

from __future__ import annotations

from pathlib import Path

import swagger_ui
from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse

# Swagger UI 5: FastAPI writes OpenAPI 3.1, which Swagger UI 4 cannot render.
SWAGGER_DIR = Path(swagger_ui.__file__).parent / "static"
SWAGGER_MOUNT = "/static/swagger"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def api_docs() -> HTMLResponse:
    """The interactive API documentation, working offline."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="TrollLLM gateway · API",
        swagger_js_url=f"{SWAGGER_MOUNT}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_MOUNT}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_MOUNT}/favicon-32x32.png",
    )

"""`/docs`: Swagger UI 5 from assets the app serves itself (the `swagger-ui-py` package), never a CDN.

The page is ours rather than FastAPI's, whose inline start-up script the pages' CSP would block:
`static/swagger-init.js` starts it instead.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui
from fastapi import APIRouter
from starlette.responses import HTMLResponse

from trollllm.web.render import page

# Swagger UI 5: FastAPI writes OpenAPI 3.1, which Swagger UI 4 cannot render.
SWAGGER_DIR = Path(swagger_ui.__file__).parent / "static"
SWAGGER_MOUNT = "/static/swagger"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def api_docs() -> HTMLResponse:
    """The interactive API documentation, working offline."""
    return page("api_docs.html", swagger=SWAGGER_MOUNT)

"""`/docs`: Swagger UI 5 from assets the app serves itself (the `swagger-ui-py` package), never a CDN.

The page is ours rather than FastAPI's, whose inline start-up script the pages' CSP would block:
`static/swagger-init.js` starts it instead.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import HTMLResponse

from trollllm.web.render import page


def _package_dir(name: str) -> Path:
    """Where an installed package is, without running its code (`swagger_ui`'s, with PyYAML, serves other
    frameworks: only its assets are used, ~1 MB a serving process does not need)."""
    spec = find_spec(name)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    return Path(spec.origin).parent


# Swagger UI 5: FastAPI writes OpenAPI 3.1, which Swagger UI 4 cannot render.
SWAGGER_DIR = _package_dir("swagger_ui") / "static"
SWAGGER_MOUNT = "/static/swagger"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def api_docs() -> HTMLResponse:
    """The interactive API documentation, working offline."""
    return page("api_docs.html", swagger=SWAGGER_MOUNT)

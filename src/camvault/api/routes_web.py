"""The web page's assets and ``/docs``, all served by camvault itself (no CDN): CCTV
networks are often air-gapped.

The page (``camvault/api/static``) ships in the package. The player (hls.js) and Swagger
UI are npm packages installed into ``web/node_modules`` by ``npm ci`` (``./scripts/run``
and ``./scripts/test`` do it); ``[api] web_modules_dir`` points elsewhere if needed.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from camvault.api.deps import ApiServices, services
from camvault.api.params import ApiError

router = APIRouter(include_in_schema=False)

_PAGE_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
# URL name → path under node_modules: an allow-list, so no path from the URL reaches the disk
_VENDOR_FILES = {
    "hls.min.js": "hls.js/dist/hls.min.js",
    "swagger-ui/swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui/swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
    "swagger-ui/favicon-32x32.png": "swagger-ui-dist/favicon-32x32.png",
}
_CACHE = {"Cache-Control": "public, max-age=3600"}


def modules_dir(configured: str) -> Path:
    if configured:
        return Path(configured)
    # an editable install / source checkout: <repo>/src/camvault/api/routes_web.py
    return Path(__file__).resolve().parents[3] / "web" / "node_modules"


@cache
def page_file(name: str) -> bytes:
    return resources.files("camvault.api").joinpath("static", name).read_bytes()


@router.get("/ui/{name}")
def ui_asset(name: str) -> Response:
    if name not in _PAGE_FILES:
        raise ApiError(404, "no such file", None)
    return Response(page_file(name), media_type=_PAGE_FILES[name], headers=_CACHE)


@router.get("/vendor/{name:path}")
def vendor_asset(name: str, svc: Annotated[ApiServices, Depends(services)]) -> FileResponse:
    rel = _VENDOR_FILES.get(name)
    if rel is None:
        raise ApiError(404, "no such file", None)
    path = modules_dir(svc.settings.web_modules_dir) / rel
    if not path.is_file():
        raise ApiError(503, f"{rel} is not installed: run `npm ci --ignore-scripts` in web/", None)
    return FileResponse(path, headers=_CACHE)


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title="camvault API",
        swagger_js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url="/vendor/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/vendor/swagger-ui/favicon-32x32.png",
    )

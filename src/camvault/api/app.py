"""The FastAPI application factory.

``create_app(services)`` takes every dependency by argument (no globals, no settings read
here). Routers are modules ``camvault.api.<name>`` exposing ``router``, listed in
``ROUTER_MODULES``: a feature adds its endpoints by adding a module and one name here.

Error mapping (clients never get a 500 for bad input): ``ApiError`` → its status;
request validation → 422 naming the field; ``NotFound`` → 404 (also for resources the
caller may not see); other ``InputError`` → 400; ``ServiceUnavailable`` → 503.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from camvault import __version__
from camvault.api.deps import ApiServices
from camvault.api.metrics import ApiMetrics
from camvault.api.params import ApiError
from camvault.errors import InputError, NotFound, ServiceUnavailable

log = logging.getLogger(__name__)

ROUTER_MODULES: tuple[str, ...] = (
    "routes_footage",
    "routes_admin",
    "routes_ops",
    "routes_restore",
    "routes_exports",
    "routes_media",
)


def create_app(services: ApiServices, *, router_modules: Sequence[str] = ROUTER_MODULES) -> FastAPI:
    app = FastAPI(
        title="camvault",
        version=__version__,
        description="Find and play archived CCTV footage. Bearer tokens from "
        "`camvault tokens create`; every read is filtered by PostgreSQL row-level security.",
    )
    app.state.services = services
    app.state.metrics = ApiMetrics(services.metrics_source)
    for name in router_modules:
        app.include_router(importlib.import_module(f"camvault.api.{name}").router)
    _install_error_handlers(app)
    _install_latency_middleware(app)
    return app


def _body(message: str, field: str | None, **extra: Any) -> dict[str, Any]:
    return {"detail": message, "field": field, **extra}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            _body(exc.message, exc.field, **exc.extra), exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        return JSONResponse(
            _body(f"{field or 'request'}: {first.get('msg', 'invalid')}", field), 422
        )

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(_body(str(exc), None), 404)

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse(_body(str(exc), None), 400)

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(_body("service unavailable, try again later", None), 503)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(_body(str(exc.detail), None), exc.status_code, headers=exc.headers)


def _install_latency_middleware(app: FastAPI) -> None:
    metrics: ApiMetrics = app.state.metrics

    @app.middleware("http")
    async def timed(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        began = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            # the route template, not the raw path: ids must not explode label cardinality
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            metrics.observe(request.method, path, status, time.perf_counter() - began)

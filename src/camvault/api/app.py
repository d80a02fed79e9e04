"""The FastAPI application factory.

``create_app(services)`` takes every dependency by argument (no globals, no settings read
here). Routers are modules ``camvault.api.<name>`` exposing ``router``, listed in
``ROUTER_MODULES``: a feature adds its endpoints by adding a module and one name here.

Error mapping (clients never get a 500 for bad input): ``ApiError`` → its status;
request validation → 422 naming the field; ``NotFound`` → 404 (also for resources the
caller may not see); ``StateConflict`` → 409 (routes that add detail, such as an archived
object's restore state, catch it themselves); ``InputError`` → 400; ``ServiceUnavailable``
→ 503. The three caller-facing branches are siblings in ``errors``, so each maps once.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from camvault import __version__
from camvault.api import openapi
from camvault.api.deps import ApiServices, authenticate, identity
from camvault.api.health import HealthCache
from camvault.api.metrics import ApiMetrics
from camvault.api.middleware import AuthGate, BodyLimit, Timing
from camvault.api.params import ApiError
from camvault.errors import InputError, NotFound, ServiceUnavailable, StateConflict

log = logging.getLogger(__name__)

ROUTER_MODULES: tuple[str, ...] = (
    "routes_footage",
    "routes_admin",
    "routes_ops",
    "routes_restore",
    "routes_session",
    "routes_timeline",
    "routes_web",
    "routes_upload_errors",
    "routes_fleet",
    "routes_exports",
    "routes_media",
)


def create_app(services: ApiServices, *, router_modules: Sequence[str] = ROUTER_MODULES) -> FastAPI:
    app = FastAPI(
        title="camvault",
        version=__version__,
        docs_url=None,  # routes_web serves /docs with local Swagger UI assets (no CDN)
        redoc_url=None,
        description="Find and play archived CCTV footage. Bearer tokens from "
        "`camvault tokens create`; every read is filtered by PostgreSQL row-level security.",
    )
    app.state.services = services
    app.state.metrics = ApiMetrics(services.metrics_source)
    app.state.health = HealthCache(services.health_checks, services.settings.health_cache_seconds)
    for name in router_modules:
        app.include_router(importlib.import_module(f"camvault.api.{name}").router)
    _install_error_handlers(app)
    openapi.install(app)
    # added innermost first: Timing sees every answer; AuthGate's check runs before
    # BodyLimit's count when the route first reads the body
    app.add_middleware(BodyLimit, max_bytes=services.settings.max_body_bytes)
    app.add_middleware(
        AuthGate,
        identity=identity,
        authenticate=functools.partial(authenticate, services),
    )
    app.add_middleware(Timing, metrics=app.state.metrics)
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

    @app.exception_handler(StateConflict)
    async def conflict(request: Request, exc: StateConflict) -> JSONResponse:
        return JSONResponse(_body(str(exc), None), 409)

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse(_body(str(exc), None), 400)

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(_body("service unavailable, try again later", None), 503)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        field = getattr(exc, "field", None)  # AuthGate's 401 names the header
        return JSONResponse(_body(str(exc.detail), field), exc.status_code, headers=exc.headers)

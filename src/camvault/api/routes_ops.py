"""Operations endpoints: ``/healthz``, ``/metrics``, and the minimal web page at ``/``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from camvault.api.deps import ApiServices, authenticate, bearer_token, services
from camvault.api.health import HealthCache, HealthOut, report
from camvault.api.params import ApiError
from camvault.api.web import INDEX_HTML
from camvault.errors import ServiceUnavailable

router = APIRouter(tags=["ops"])


@router.get(
    "/healthz",
    response_model=HealthOut,
    response_model_exclude_none=True,
    responses={503: {"model": HealthOut, "description": "a dependency is degraded"}},
)
def healthz(request: Request, svc: Annotated[ApiServices, Depends(services)]) -> JSONResponse:
    """200 when every dependency (database, S3) answers, else 503; per component only
    ok/degraded. The failure text is added for an admin's bearer token. Cached for
    ``[api] health_cache_seconds``."""
    cache: HealthCache = request.app.state.health
    out, status = report(cache.results(), details=_is_admin(svc, request))
    return JSONResponse(out.model_dump(exclude_none=True), status_code=status)


def _is_admin(svc: ApiServices, request: Request) -> bool:
    if bearer_token(request.headers) is None:
        return False  # the common case (probes) costs no token lookup
    try:
        return authenticate(svc, request.headers).is_admin
    except (ApiError, ServiceUnavailable):
        return False  # anonymous then: health must answer even with the database down


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


@router.get("/", include_in_schema=False)
def index() -> HTMLResponse:
    return HTMLResponse(INDEX_HTML)

"""Operations endpoints: ``/healthz``, ``/metrics``, and the minimal web page at ``/``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from camvault.api.deps import ApiServices, services
from camvault.api.web import INDEX_HTML

router = APIRouter(tags=["ops"])


@router.get("/healthz")
def healthz(svc: Annotated[ApiServices, Depends(services)]) -> JSONResponse:
    """200 when every dependency (database, S3) answers, else 503 naming the failures."""
    checks: dict[str, Any] = {}
    ok = True
    for name, check in svc.health_checks.items():
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # report, never raise: this is the health endpoint
            checks[name] = f"failed: {exc}"
            ok = False
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


@router.get("/", include_in_schema=False)
def index() -> HTMLResponse:
    return HTMLResponse(INDEX_HTML)

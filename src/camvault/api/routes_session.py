"""Web sign-in: ``POST /api/session`` sets the session cookie, ``DELETE`` ends it,
``GET`` says who is signed in (cookie or bearer token).

The cookie is HttpOnly (page scripts cannot read it), SameSite=Strict, Secure when the
request came over https, and lives ``[api] session_hours``. Sign-in and sign-out need the
CSRF header too, so a hostile page can neither sign a victim in nor out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from camvault.api.deps import ApiServices, CallerDep, services
from camvault.api.params import ApiError
from camvault.api.web_auth import require_csrf_header
from camvault.errors import SignInFailed, SignInThrottled
from camvault.sessions import COOKIE_NAME, MAX_PASSWORD_LENGTH, SessionStore, Throttle

router = APIRouter(prefix="/api", tags=["session"])


class SignInIn(BaseModel):
    """A browser sign-in: user name and password."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class SessionOut(BaseModel):
    """Who the caller is: user, admin or not, and how they authenticated (session cookie or bearer
    token)."""

    user: str
    user_id: int
    is_admin: bool
    via: str  # "session" (cookie) or "token" (bearer)
    expires_at: datetime | None = None


def _addr(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.post(
    "/session",
    response_model=SessionOut,
    responses={
        401: {"description": "wrong user name or password"},
        429: {"description": "throttled"},
    },
)
def sign_in(
    request: Request,
    response: Response,
    body: SignInIn,
    svc: Annotated[ApiServices, Depends(services)],
) -> SessionOut:
    """Check the password and set the session cookie. Needs ``X-Camvault-CSRF: 1``."""
    require_csrf_header(request.method, request.headers)
    cfg = svc.settings
    try:
        done = SessionStore(svc.access.connector).sign_in(
            body.username,
            body.password,
            lifetime=timedelta(hours=cfg.session_hours),
            now=svc.clock(),
            throttle=Throttle(
                timedelta(minutes=cfg.signin_window_minutes),
                cfg.signin_max_failures_per_user,
                cfg.signin_max_failures_per_addr,
            ),
            addr=_addr(request),
            agent=request.headers.get("user-agent"),
        )
    except SignInThrottled as exc:
        raise ApiError(
            429, str(exc), None, headers={"Retry-After": str(exc.retry_after_seconds)}
        ) from exc
    except SignInFailed as exc:
        raise ApiError(401, str(exc), "password") from exc
    response.set_cookie(
        COOKIE_NAME,
        done.secret,
        max_age=int(cfg.session_hours * 3600),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    who = done.identity
    return SessionOut(
        user=who.user_name,
        user_id=who.user_id,
        is_admin=who.is_admin,
        via="session",
        expires_at=done.expires_at,
    )


@router.get("/session", response_model=SessionOut)
def whoami(c: CallerDep) -> SessionOut:
    return SessionOut(
        user=c.who.user_name,
        user_id=c.who.user_id,
        is_admin=c.who.is_admin,
        via="session" if c.who.session_id is not None else "token",
    )


@router.delete("/session", status_code=204, response_class=Response)
def sign_out(request: Request, svc: Annotated[ApiServices, Depends(services)]) -> Response:
    """End the cookie's session (idempotent) and clear the cookie."""
    require_csrf_header(request.method, request.headers)
    secret = request.cookies.get(COOKIE_NAME)
    if secret:
        SessionStore(svc.access.connector).sign_out(
            secret, addr=_addr(request), agent=request.headers.get("user-agent")
        )
    response = Response(status_code=204)
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response

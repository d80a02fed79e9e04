"""What the API needs from the outside (``ApiServices``, passed to ``create_app``) and the
request-scoped dependencies built from it: the caller's identity and their catalog view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers

from camvault.api.metrics import MetricsSource
from camvault.api.middleware import IDENTITY_STATE
from camvault.api.params import MAX_BIGINT, ApiError
from camvault.api.playback import PlaybackGate, Presigner, StorageClassGate
from camvault.api.web_auth import cookie_identity
from camvault.catalog.access import AccessCatalog, AuditEntry, Identity
from camvault.catalog.attempts import AttemptCatalog
from camvault.config import ApiSettings
from camvault.export.service import ClipServices
from camvault.restore import RestoreService


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ApiServices:
    """The API's I/O, built by the wiring (``camvault.api.server.build_services``).

    ``access`` must run as the unprivileged API role (``RoleConnector``): every read made
    on a user's behalf goes through row-level security.
    """

    access: AccessCatalog
    store: Presigner
    settings: ApiSettings = field(default_factory=ApiSettings)
    gate: PlaybackGate = field(default_factory=StorageClassGate)
    restores: RestoreService | None = None  # Glacier restores (routes_restore)
    clips: ClipServices | None = None  # clip exports and clipped playback (routes_exports)
    # name → check raising on failure, for /healthz
    health_checks: Mapping[str, Callable[[], None]] = field(default_factory=dict)
    metrics_source: MetricsSource | None = None
    # failed upload attempts (routes_upload_errors); must run as the API role like access
    upload_attempts: AttemptCatalog | None = None
    clock: Callable[[], datetime] = _utcnow
    # the fleet's `[node] lease_seconds`: GET /api/nodes calls a node alive while its last
    # heartbeat is younger than that
    lease_seconds: float = 15.0


def services(request: Request) -> ApiServices:
    svc: ApiServices = request.app.state.services
    return svc


_bearer = HTTPBearer(auto_error=False, description="API token from `camvault tokens create`")
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}

# Where a request's credential may come from, tried in order; each returns the raw token
# or None. (The session cookie is not a token: ``authenticate`` falls back to it.)
CredentialSource = Callable[[Headers], str | None]


def bearer_token(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


CREDENTIAL_SOURCES: tuple[CredentialSource, ...] = (bearer_token,)


def authenticate(svc: ApiServices, headers: Headers, method: str = "GET") -> Identity:
    """The caller's identity from the request headers, or ``ApiError`` 401 (403 for a
    cookie-authenticated state change without the CSRF header).

    A bearer token wins; without an Authorization header the web page's session cookie,
    if any. Blocking (one database query). Run by ``AuthGate`` before the body is read.
    """
    token = next((t for src in CREDENTIAL_SOURCES if (t := src(headers)) is not None), None)
    if token is None and "authorization" not in headers:
        web_user = cookie_identity(method, headers, svc.access)
        if web_user is not None:
            return web_user
    if token is None:
        raise ApiError(401, "missing bearer token", "Authorization", headers=_UNAUTHORIZED)
    # only well-formed token text reaches the database (no NUL bytes, bounded length)
    if len(token) > 256 or not token.isascii() or not token.isprintable():
        raise ApiError(401, "invalid bearer token", "Authorization", headers=_UNAUTHORIZED)
    who = svc.access.authenticate(token)
    if who is None:
        raise ApiError(
            401, "invalid, expired or revoked token", "Authorization", headers=_UNAUTHORIZED
        )
    return who


def identity(
    request: Request,
    svc: Annotated[ApiServices, Depends(services)],
    # declared for the OpenAPI security scheme; the credential is read by ``authenticate``
    _creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Identity:
    who: Identity | None = getattr(request.state, IDENTITY_STATE, None)
    if who is None:  # not behind AuthGate (e.g. an app built without it)
        who = authenticate(svc, request.headers, request.method)
        setattr(request.state, IDENTITY_STATE, who)  # for logging by user id, never by token
    return who


def admin(who: Annotated[Identity, Depends(identity)]) -> Identity:
    if not who.is_admin:
        raise ApiError(403, "this endpoint needs an admin user")
    return who


@dataclass(frozen=True)
class Caller:
    """The authenticated caller: their identity and the catalog as they may see it."""

    who: Identity
    access: AccessCatalog
    svc: ApiServices
    client_addr: str | None
    user_agent: str | None

    def audit_entry(self, action: str, **fields: object) -> AuditEntry:
        return AuditEntry(
            action=action,
            client_addr=self.client_addr,
            user_agent=self.user_agent,
            **fields,  # type: ignore[arg-type]
        )

    def audit(self, action: str, **fields: object) -> None:
        """An audit row alone; a change writes its row in its own transaction instead
        (``access.atomic()`` + ``audit_entry``)."""
        self.access.audit(self.audit_entry(action, **fields))


def _caller(request: Request, svc: ApiServices, who: Identity) -> Caller:
    return Caller(
        who=who,
        access=svc.access.acting(who),
        svc=svc,
        client_addr=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def caller(
    request: Request,
    svc: Annotated[ApiServices, Depends(services)],
    who: Annotated[Identity, Depends(identity)],
) -> Caller:
    return _caller(request, svc, who)


def admin_caller(
    request: Request,
    svc: Annotated[ApiServices, Depends(services)],
    who: Annotated[Identity, Depends(admin)],
) -> Caller:
    return _caller(request, svc, who)


CallerDep = Annotated[Caller, Depends(caller)]
AdminDep = Annotated[Caller, Depends(admin_caller)]


# path and query parameters several routers share
RecordingId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="recording id")]
VisibleStart = Annotated[str | None, Query(description="ISO 8601; default: visible start")]
VisibleEnd = Annotated[str | None, Query(description="ISO 8601; default: visible end")]

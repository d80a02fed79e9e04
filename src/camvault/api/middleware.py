"""ASGI middleware that runs before FastAPI reads a request body.

FastAPI reads and parses the body before it resolves dependencies, so the auth dependency
alone would let an anonymous client make the server buffer any amount of JSON. Hence:

* ``BodyLimit`` answers 413 for a declared ``Content-Length`` over the limit at the
  first chunk read, and counts the bytes actually received (chunked bodies have no
  length) so reading stops at the limit;
* ``AuthGate`` authenticates requests to routes that need a caller before their body is
  read: no or bad credentials → 401 with the body unread. The identity it finds is left
  in the request state for the ``identity`` dependency, so a token is checked once.
* ``Timing`` records latency by route template and a fixed method set.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi.dependencies.models import Dependant
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from camvault.api.metrics import ApiMetrics
from camvault.api.params import ApiError
from camvault.errors import ServiceUnavailable

log = logging.getLogger(__name__)

IDENTITY_STATE = "identity"  # request.state attribute the gate fills


class BodyTooLarge(HTTPException):
    """Answered 413 when a request body exceeds ``[api] max_body_bytes`` (raised while reading)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


async def send_error(
    send: Send, status: int, detail: str, field: str | None, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"detail": detail, "field": field}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if status in (401, 413):
        # the body was not read: the connection cannot carry another request
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: refuses request bodies over ``max_bytes`` with 413 — by Content-Length
    before reading, or by counting while the route reads a chunked body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = Headers(scope=scope).get("content-length")
        too_long = declared is not None and declared.isdigit() and int(declared) > limit
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            # checked when the route first reads, after AuthGate (inside ``receive``) has
            # had its say: an anonymous caller learns 401, not how big a body may be
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if too_long or received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except BodyTooLarge as exc:
            # normally FastAPI's handler answers it; this covers readers outside a route
            if started:
                raise
            await send_error(send, 413, exc.detail, None)


def _needs(dependant: Dependant, target: Callable[..., Any]) -> bool:
    return any(d.call is target or _needs(d, target) for d in dependant.dependencies)


class Unauthorized(HTTPException):
    """Raised from ``receive``: FastAPI passes HTTPExceptions from body reading through."""

    def __init__(self, err: ApiError) -> None:
        super().__init__(err.status, err.message, headers=err.headers)
        self.field = err.field


class AuthGate:
    """Authenticates before the first body byte is read, for routes needing ``identity``.

    Routing happens before the body is read, so when the route first asks for the body
    (``receive``), ``scope["route"]`` is known: if it depends on ``identity`` the caller is
    authenticated right then — no or bad credentials → 401, the body left unread. Routes
    without a body authenticate in the dependency as before. ``authenticate(headers, method)``
    (blocking: one database query) returns the identity or raises ``ApiError`` (401).
    """

    def __init__(
        self,
        app: ASGIApp,
        identity: Callable[..., Any],
        authenticate: Callable[[Headers, str], Any],
    ) -> None:
        self.app = app
        self._identity = identity
        self._authenticate = authenticate
        self._guarded: dict[int, bool] = {}

    def _guards(self, scope: Scope) -> bool:
        route = scope.get("route")
        dependant = getattr(route, "dependant", None)
        if not isinstance(dependant, Dependant):
            return False
        key = id(route)
        if key not in self._guarded:
            self._guarded[key] = _needs(dependant, self._identity)
        return self._guarded[key]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        checked = False

        async def gated() -> Message:
            nonlocal checked
            if not checked:
                checked = True
                state = scope.setdefault("state", {})
                if IDENTITY_STATE not in state and self._guards(scope):
                    try:
                        who = await run_in_threadpool(
                            self._authenticate, Headers(scope=scope), scope["method"]
                        )
                    except ApiError as exc:
                        raise Unauthorized(exc) from None
                    except ServiceUnavailable as exc:
                        # FastAPI turns other errors raised while reading a body into 400
                        log.warning("%s %s: %s", scope["method"], scope["path"], exc)
                        raise HTTPException(503, "service unavailable, try again later") from exc
                    state[IDENTITY_STATE] = who
            return await receive()

        await self.app(scope, gated, send)


class Timing:
    """ASGI middleware: measures every request and records it in ``ApiMetrics`` by method, route
    template and status."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            # the route template, not the raw path: ids must not explode label cardinality
            route = scope.get("route")
            path = getattr(route, "path", None)
            self.metrics.observe(scope["method"], path, status, time.perf_counter() - began)

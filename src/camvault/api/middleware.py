"""ASGI middleware that runs before FastAPI reads a request body.

FastAPI reads and parses the body before it resolves dependencies, so the auth dependency
alone would let an anonymous client make the server buffer any amount of JSON. Hence:

* ``BodyLimit`` answers 413 for a declared ``Content-Length`` over the limit without
  reading anything, and counts the bytes actually received (chunked bodies have no
  length) so reading stops at the limit;
* ``AuthGate`` authenticates requests to routes that need a caller *before* the route
  runs: no or bad credentials → 401 with the body unread. The identity it finds is left
  in the request state for the ``identity`` dependency, so a token is checked once.
* ``Timing`` records latency by route template and a fixed method set.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from camvault.api.metrics import ApiMetrics
from camvault.api.params import ApiError
from camvault.errors import ServiceUnavailable

log = logging.getLogger(__name__)

IDENTITY_STATE = "identity"  # request.state attribute the gate fills


class BodyTooLarge(HTTPException):
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
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_error(send, 413, BodyTooLarge(limit).detail, None)
            return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
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


class AuthGate:
    """Authenticates before the body is read, for the routes depending on ``identity``.

    ``authenticate(headers)`` (blocking: it asks the database) returns the identity or
    raises ``ApiError`` (401); it runs in the thread pool like the routes themselves.
    """

    def __init__(
        self,
        app: ASGIApp,
        api: FastAPI,
        identity: Callable[..., Any],
        authenticate: Callable[[Headers], Any],
    ) -> None:
        self.app = app
        self._api = api
        self._identity = identity
        self._authenticate = authenticate
        self._guarded: dict[int, bool] = {}

    def _guards(self, scope: Scope) -> bool:
        for route in self._api.router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                key = id(route)
                if key not in self._guarded:
                    self._guarded[key] = isinstance(route, APIRoute) and _needs(
                        route.dependant, self._identity
                    )
                return self._guarded[key]
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._guards(scope):
            await self.app(scope, receive, send)
            return
        try:
            who = await run_in_threadpool(self._authenticate, Headers(scope=scope))
        except ApiError as exc:
            await send_error(send, exc.status, exc.message, exc.field, exc.headers)
            return
        except ServiceUnavailable as exc:
            log.warning("%s %s: %s", scope["method"], scope["path"], exc)
            await send_error(send, 503, "service unavailable, try again later", None)
            return
        scope.setdefault("state", {})[IDENTITY_STATE] = who
        await self.app(scope, receive, send)


class Timing:
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

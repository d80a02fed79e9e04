"""Cookie authentication for the web page, with its CSRF defence.

A browser sends the session cookie with every request to camvault, including ones a
hostile page triggers (a cross-site form post). SameSite=Strict already stops most of
that; as a second, independent defence every state-changing request authenticated by the
cookie must carry ``X-Camvault-CSRF: 1`` — a header a cross-site form cannot set and a
cross-site ``fetch`` cannot send without a CORS preflight camvault never grants.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from camvault.api.params import ApiError
from camvault.catalog.access import AccessCatalog, Identity
from camvault.sessions import COOKIE_NAME, SessionStore

CSRF_HEADER = "X-Camvault-CSRF"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def require_csrf_header(method: str, headers: Headers) -> None:
    if method not in SAFE_METHODS and headers.get(CSRF_HEADER) != "1":
        raise ApiError(
            403,
            f"cookie-authenticated requests that change state need {CSRF_HEADER}: 1",
            CSRF_HEADER,
        )


def cookie_identity(method: str, headers: Headers, access: AccessCatalog) -> Identity | None:
    """The signed-in user of the session cookie; None when there is no cookie."""
    secret = cookie_parser(headers.get("cookie", "")).get(COOKIE_NAME)
    if not secret:
        return None
    who = SessionStore(access.connector).authenticate(secret)
    if who is None:
        raise ApiError(401, "session expired or ended; sign in again", COOKIE_NAME)
    require_csrf_header(method, headers)
    return who

"""Web sign-in: argon2id passwords, PostgreSQL-backed sessions, failed sign-in throttling.

Nothing lives in process memory, so stateless API replicas share sessions and the
throttle. The cookie carries a 256-bit random secret; only its SHA-256 is stored (a fast
hash is enough for a random secret, and lookup is an index probe). Passwords are argon2id
(``argon2-cffi``); a sign-in for an unknown user still verifies against a dummy hash so
timing does not tell which user names exist.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from camvault.catalog.access import Identity
from camvault.catalog.connector import Connector, Session
from camvault.catalog.queries import query
from camvault.errors import InputError, SignInFailed, SignInThrottled

_SQL = "sessions.sql"
COOKIE_NAME = "camvault_session"
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; bound the work an attacker can ask for

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults
_DUMMY_HASH = _hasher.hash("camvault-no-such-user")


def q(name: str) -> str:
    return query(name, _SQL)


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InputError(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return stored is not None


def _secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class Throttle:
    """At most ``per_user`` failures per user name and ``per_addr`` per client address
    within ``window``."""

    window: timedelta = timedelta(minutes=15)
    per_user: int = 5
    per_addr: int = 20


@dataclass(frozen=True)
class SignedIn:
    """A new browser session: the cookie secret (shown once), who it is for, and when it expires."""

    secret: str  # the cookie value: shown to the browser once, never stored
    identity: Identity
    expires_at: datetime


class SessionStore:
    """Sign-in, cookie authentication and sign-out, on the API role's connector."""

    def __init__(self, connector: Connector) -> None:
        self._db = connector

    def sign_in(
        self,
        name: str,
        password: str,
        *,
        lifetime: timedelta,
        now: datetime,
        throttle: Throttle,
        addr: str | None,
        agent: str | None,
    ) -> SignedIn:
        with self._db.transaction() as s:
            row = s.fetchone(
                q("signin_lookup"), {"name": name, "addr": addr, "since": now - throttle.window}
            )
        assert row is not None  # the function always returns one row
        failed = {"name": name, "addr": addr, "agent": agent}
        if row["user_failures"] >= throttle.per_user or row["addr_failures"] >= throttle.per_addr:
            with self._db.transaction() as s:
                s.execute(q("signin_failed"), {**failed, "reason": "throttled", "counted": False})
            raise SignInThrottled(
                "too many failed sign-ins; try again later",
                int(throttle.window.total_seconds()),
            )
        if len(password) > MAX_PASSWORD_LENGTH or not verify_password(
            row["password_hash"], password
        ):
            reason = "no such user or no password" if row["user_id"] is None else "bad password"
            with self._db.transaction() as s:
                s.execute(q("signin_failed"), {**failed, "reason": reason, "counted": True})
            raise SignInFailed("wrong user name or password")
        secret = secrets.token_urlsafe(32)
        expires = now + lifetime
        with self._db.transaction() as s:
            started = s.fetchone(
                q("session_start"),
                {
                    "user_id": row["user_id"],
                    "hash": _secret_hash(secret),
                    "expires_at": expires,
                    "addr": addr,
                    "agent": agent,
                },
            )
        if started is None or started["session_id"] is None:  # disabled meanwhile
            raise SignInFailed("wrong user name or password")
        who = Identity(
            row["user_id"], row["user_name"], row["is_admin"], 0, session_id=started["session_id"]
        )
        return SignedIn(secret, who, expires)

    def authenticate(self, secret: str) -> Identity | None:
        if not secret or len(secret) > 128 or not secret.isascii():
            return None
        with self._db.transaction() as s:
            row = s.fetchone(q("session_authenticate"), {"hash": _secret_hash(secret)})
        if row is None:
            return None
        return Identity(
            row["user_id"], row["user_name"], row["is_admin"], 0, session_id=row["session_id"]
        )

    def sign_out(self, secret: str, *, addr: str | None, agent: str | None) -> bool:
        if not secret or len(secret) > 128 or not secret.isascii():
            return False
        with self._db.transaction() as s:
            row = s.fetchone(
                q("session_end"), {"hash": _secret_hash(secret), "addr": addr, "agent": agent}
            )
        return row is not None and row["user_id"] is not None


def set_password(connector: Connector, user_id: int, password: str) -> None:
    """Store ``password`` (argon2id) for a user and end their sessions: on the owner's or
    service connection (the operator CLI), never the API role."""
    hashed = hash_password(password)
    with connector.transaction() as s:
        store_password(s, user_id, hashed)


def store_password(s: Session, user_id: int, hashed: str) -> None:
    """Store an argon2id hash and end the user's sessions, inside the caller's transaction
    (so the CLI commits it together with its audit row)."""
    s.execute(q("set_password"), {"user_id": user_id, "hash": hashed})
    s.execute(q("end_user_sessions"), {"user_id": user_id, "reason": "password_changed"})


def has_password(connector: Connector, user_id: int) -> bool:
    with connector.transaction() as s:
        row = s.fetchone(q("has_password"), {"user_id": user_id})
    return bool(row and row["has"])


INITIAL_ADMIN = "admin"


def ensure_initial_admin(connector: Connector) -> str | None:
    """On embedded defaults: when no user has a password yet, give ``admin`` (created if
    missing) a random one and return it, to be printed once. None when already set up."""
    from camvault.catalog.access import AccessCatalog  # the owner's view, like the CLI
    from camvault.errors import NotFound

    with connector.transaction() as s:
        row = s.fetchone("SELECT EXISTS (SELECT 1 FROM user_passwords) AS any")
    if row and row["any"]:
        return None
    access = AccessCatalog(connector)
    try:
        user = access.get_user(INITIAL_ADMIN)
    except NotFound:
        user = access.add_user(INITIAL_ADMIN, is_admin=True)
    password = secrets.token_urlsafe(12)
    set_password(connector, user.id, password)
    return password

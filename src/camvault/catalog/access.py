"""Access-control facade: principals, grants, tokens, audit, and the API's reads, by name.

The same methods serve the operator CLI (the owner's connector, no acting user: the
service policies let it see everything) and the API (``RoleConnector`` to
``camvault_api`` plus ``acting(user_id)``: row-level security decides what it sees).
Nothing here filters rows for access — that is PostgreSQL's job.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from camvault.acl import Grant, Permission, hash_token, new_token, token_hint
from camvault.catalog.connector import Connector, Row, Session
from camvault.catalog.queries import query
from camvault.catalog.recordings import recording_from_row
from camvault.errors import (
    InputError,
    IntegrityViolation,
    NotFound,
    UnknownCamera,
    UnknownPrincipal,
)
from camvault.models import Camera, Recording

_SQL = "access.sql"
_UNIQUE_VIOLATION = "23505"
_FOREIGN_KEY_VIOLATION = "23503"
_CHECK_VIOLATION = "23514"

T = TypeVar("T")


def q(name: str) -> str:
    return query(name, _SQL)


@dataclass(frozen=True, slots=True)
class User:
    """A user row."""

    id: int
    name: str
    is_admin: bool = False
    disabled: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """A group row and its members' names."""

    id: int
    name: str
    created_at: datetime | None = None
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """A grant as stored: the pure ``acl.Grant`` plus who holds it, by name."""

    grant: Grant
    user_name: str | None = None
    group_name: str | None = None
    created_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        g = self.grant
        return {
            "id": g.id,
            "camera_id": g.camera_id,
            "permission": g.permission.label,
            "user_id": g.user_id,
            "user": self.user_name,
            "group_id": g.group_id,
            "group": self.group_name,
            "window_start": g.window_start,
            "window_end": g.window_end,
            "expires_at": g.expires_at,
            "revoked_at": g.revoked_at,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """An API token's row: its hint (a prefix to recognise it by), dates and owner; never the
    token."""

    id: int
    user_id: int
    hint: str
    name: str = ""
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    user_name: str | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a bearer token belongs to."""

    user_id: int
    user_name: str
    is_admin: bool
    token_id: int  # 0 when signed in with a web session
    session_id: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What to write to ``audit_log`` for one action; who did it is added from the session's
    identity."""

    action: str
    camera_id: str | None = None
    recording_id: int | None = None
    recording_start: datetime | None = None
    s3_key: str | None = None
    client_addr: str | None = None
    user_agent: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def spans(value: Any) -> tuple[tuple[datetime, datetime], ...]:
    """A tstzmultirange (psycopg ``Multirange``) as sorted (start, end) pairs in UTC."""
    return tuple(
        (r.lower.astimezone(UTC), r.upper.astimezone(UTC))
        for r in value
        if r.lower is not None and r.upper is not None
    )


def visible_recording(row: Row) -> Recording:
    """A recording row with what the caller may see of it (``visible_range``)."""
    rec = recording_from_row(row)
    vis = row.get("visible_range")
    return rec if vis is None else replace(rec, visible=spans(vis))


def _user(row: Row) -> User:
    return User(row["id"], row["name"], row["is_admin"], row["disabled"], row["created_at"])


def _camera(row: Row) -> Camera:
    return Camera(row["id"], row["name"], row["segment_seconds"], row["enabled"], row["created_at"])


def grant_from_row(row: Row) -> GrantRecord:
    return GrantRecord(
        Grant(
            id=row["id"],
            camera_id=row["camera_id"],
            permission=Permission.parse(row["permission"]),
            user_id=row["user_id"],
            group_id=row["group_id"],
            window_start=row["window_start"],
            window_end=row["window_end"],
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
        ),
        user_name=row.get("user_name"),
        group_name=row.get("group_name"),
        created_at=row.get("created_at"),
    )


def _token(row: Row) -> TokenInfo:
    return TokenInfo(
        id=row["id"],
        user_id=row["user_id"],
        hint=row["hint"],
        name=row["name"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        user_name=row.get("user_name"),
    )


class AccessCatalog:
    """Users and groups are referred to by name (``str``) or by id (``int``) — never a
    string parsed as an id: names cannot be all digits (schema CHECK), and a caller who
    has an id passes an ``int``.

    ``actor`` names who acts in audit rows when there is no acting API user: ``os:<login>``
    for the operator CLI, ``system`` for the pipeline.
    """

    def __init__(
        self,
        connector: Connector,
        acting_user: Identity | None = None,
        *,
        actor: str = "system",
        _session: Session | None = None,
    ) -> None:
        self._db = connector
        self.identity = acting_user
        self.actor = f"user:{acting_user.user_name}" if acting_user else actor
        self._session = _session

    @property
    def connector(self) -> Connector:
        """For companion catalogs (sessions, timeline) running on the same role."""
        return self._db

    def acting(self, identity: Identity) -> AccessCatalog:
        """The same catalog, each transaction run on behalf of ``identity``."""
        return AccessCatalog(self._db, identity)

    @contextmanager
    def atomic(self) -> Iterator[AccessCatalog]:
        """This catalog with every call inside the block in ONE transaction — a change and
        its audit row commit together or not at all."""
        with self._tx() as s:
            yield AccessCatalog(self._db, self.identity, actor=self.actor, _session=s)

    def within(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` on this catalog's transaction (inside ``atomic()``: the same one)."""
        with self._tx() as s:
            return fn(s)

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        if self._session is not None:  # inside atomic(): errors surface at its end
            yield self._session
            return
        uid = self.identity.user_id if self.identity else None
        try:
            with self._db.transaction(acting_user=uid) as s:
                yield s
        except IntegrityViolation as exc:
            raise _integrity(exc) from exc

    # users -------------------------------------------------------------------------------
    def add_user(self, name: str, *, is_admin: bool = False) -> User:
        _check_name("user", name)
        with self._tx() as s:
            row = s.fetchone(q("add_user"), {"name": name, "is_admin": is_admin})
        assert row is not None
        return _user(row)

    def get_user(self, name_or_id: str | int) -> User:
        with self._tx() as s:
            row = _lookup(s, "user", name_or_id)
        return _user(row)

    def list_users(self) -> list[User]:
        with self._tx() as s:
            return [_user(r) for r in s.fetchall(q("list_users"))]

    def update_user(
        self, user_id: int, *, is_admin: bool | None = None, disabled: bool | None = None
    ) -> User:
        with self._tx() as s:
            row = s.fetchone(
                q("update_user"), {"id": user_id, "is_admin": is_admin, "disabled": disabled}
            )
        if row is None:
            raise NotFound(f"no user {user_id}")
        return _user(row)

    def delete_user(self, user_id: int) -> None:
        with self._tx() as s:
            if s.fetchone(q("delete_user"), {"id": user_id}) is None:
                raise NotFound(f"no user {user_id}")

    # groups ------------------------------------------------------------------------------
    def add_group(self, name: str) -> Group:
        _check_name("group", name)
        with self._tx() as s:
            row = s.fetchone(q("add_group"), {"name": name})
        assert row is not None
        return Group(row["id"], row["name"], row["created_at"])

    def get_group(self, name_or_id: str | int) -> Group:
        with self._tx() as s:
            row = _lookup(s, "group", name_or_id)
        return Group(row["id"], row["name"], row["created_at"])

    def list_groups(self) -> list[Group]:
        with self._tx() as s:
            rows = s.fetchall(q("list_groups"))
        return [Group(r["id"], r["name"], r["created_at"], tuple(r["members"])) for r in rows]

    def delete_group(self, group_id: int) -> None:
        with self._tx() as s:
            if s.fetchone(q("delete_group"), {"id": group_id}) is None:
                raise NotFound(f"no group {group_id}")

    def add_member(self, group: str | int, user: str | int) -> tuple[Group, User]:
        with self._tx() as s:
            g = _lookup(s, "group", group)
            u = _lookup(s, "user", user)
            s.execute(q("add_member"), {"group_id": g["id"], "user_id": u["id"]})
        return Group(g["id"], g["name"], g["created_at"]), _user(u)

    def remove_member(self, group: str | int, user: str | int) -> tuple[Group, User]:
        with self._tx() as s:
            g = _lookup(s, "group", group)
            u = _lookup(s, "user", user)
            if s.fetchone(q("remove_member"), {"group_id": g["id"], "user_id": u["id"]}) is None:
                raise NotFound(f"user {u['name']} is not a member of group {g['name']}")
        return Group(g["id"], g["name"], g["created_at"]), _user(u)

    def group_ids_of(self, user_id: int) -> frozenset[int]:
        with self._tx() as s:
            rows = s.fetchall(q("user_group_ids"), {"user_id": user_id})
        return frozenset(r["group_id"] for r in rows)

    # grants ------------------------------------------------------------------------------
    def add_grant(
        self,
        *,
        camera_id: str,
        permission: Permission = Permission.VIEW,
        user: str | int | None = None,
        group: str | int | None = None,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> GrantRecord:
        if (user is None) == (group is None):
            raise InputError("a grant needs exactly one of --user or --group")
        with self._tx() as s:
            user_id = _lookup(s, "user", user)["id"] if user is not None else None
            group_id = _lookup(s, "group", group)["id"] if group is not None else None
            # validates the window/holder rules before the database sees them
            Grant(0, camera_id, permission, user_id, group_id, window_start, window_end)
            params = {
                "user_id": user_id,
                "group_id": group_id,
                "camera_id": camera_id,
                "permission": permission.label,
                "window_start": window_start,
                "window_end": window_end,
                "expires_at": expires_at,
                "created_by": self.identity.user_id if self.identity else None,
            }
            if s.fetchone(q("visible_camera"), {"id": camera_id}) is None:
                raise UnknownCamera(camera_id)
            row = s.fetchone(q("add_grant"), params)
            assert row is not None
            full = s.fetchone(q("get_grant"), {"id": row["id"]})
        assert full is not None
        return grant_from_row(full)

    def get_grant(self, grant_id: int) -> GrantRecord:
        with self._tx() as s:
            row = s.fetchone(q("get_grant"), {"id": grant_id})
        if row is None:
            raise NotFound(f"no grant {grant_id}")
        return grant_from_row(row)

    def list_grants(
        self,
        *,
        camera_id: str | None = None,
        user: str | int | None = None,
        group: str | int | None = None,
        include_revoked: bool = False,
    ) -> list[GrantRecord]:
        with self._tx() as s:
            user_id = _lookup(s, "user", user)["id"] if user is not None else None
            group_id = _lookup(s, "group", group)["id"] if group is not None else None
            rows = s.fetchall(
                q("list_grants"),
                {
                    "camera_id": camera_id,
                    "user_id": user_id,
                    "group_id": group_id,
                    "include_revoked": include_revoked,
                },
            )
        return [grant_from_row(r) for r in rows]

    def revoke_grant(self, grant_id: int) -> None:
        with self._tx() as s:
            if s.fetchone(q("revoke_grant"), {"id": grant_id}) is None:
                raise NotFound(f"no active grant {grant_id}")

    def recording_acl(self, rec: Recording) -> list[GrantRecord]:
        with self._tx() as s:
            return self._acl(s, rec)

    @staticmethod
    def _acl(s: Session, rec: Recording) -> list[GrantRecord]:
        rows = s.fetchall(
            q("recording_acl"),
            {"camera_id": rec.camera_id, "start_time": rec.start_time, "end_time": rec.end_time},
        )
        return [grant_from_row(r) for r in rows]

    # tokens ------------------------------------------------------------------------------
    def create_token(
        self, user: str | int, *, name: str = "", expires_at: datetime | None = None
    ) -> tuple[str, TokenInfo]:
        """Returns the token value — shown once, never stored — and its stored record."""
        token = new_token()
        with self._tx() as s:
            u = _lookup(s, "user", user)
            row = s.fetchone(
                q("create_token"),
                {
                    "user_id": u["id"],
                    "token_hash": hash_token(token),
                    "hint": token_hint(token),
                    "name": name,
                    "expires_at": expires_at,
                },
            )
        assert row is not None
        return token, replace(_token(row), user_name=u["name"])

    def list_tokens(self, user: str | int | None = None) -> list[TokenInfo]:
        with self._tx() as s:
            user_id = _lookup(s, "user", user)["id"] if user is not None else None
            return [_token(r) for r in s.fetchall(q("list_tokens"), {"user_id": user_id})]

    def revoke_token(self, token_id: int) -> None:
        with self._tx() as s:
            if s.fetchone(q("revoke_token"), {"id": token_id}) is None:
                raise NotFound(f"no active token {token_id}")

    def authenticate(self, token: str) -> Identity | None:
        with self._tx() as s:
            row = s.fetchone(q("authenticate"), {"token_hash": hash_token(token)})
        if row is None:
            return None
        return Identity(row["user_id"], row["user_name"], row["is_admin"], row["token_id"])

    # audit -------------------------------------------------------------------------------
    def audit(self, entry: AuditEntry) -> None:
        with self._tx() as s:
            self._audit(s, entry)

    def _audit(self, s: Session, e: AuditEntry) -> None:
        who = self.identity
        s.execute(
            q("insert_audit"),
            {
                "user_id": who.user_id if who else None,
                "user_name": who.user_name if who else "",
                "actor": self.actor,
                "action": e.action,
                "camera_id": e.camera_id,
                "recording_id": e.recording_id,
                "recording_start": e.recording_start,
                "s3_key": e.s3_key,
                "client_addr": e.client_addr,
                "user_agent": (e.user_agent or "")[:512] or None,
                "detail": json.dumps(e.detail, default=str),
            },
        )

    def list_audit(
        self,
        *,
        limit: int = 100,
        before_id: int | None = None,
        user_id: int | None = None,
        camera_id: str | None = None,
        action: str | None = None,
    ) -> list[Row]:
        with self._tx() as s:
            rows: list[Row] = s.fetchall(
                q("list_audit"),
                {
                    "limit": limit,
                    "before_id": before_id,
                    "user_id": user_id,
                    "camera_id": camera_id,
                    "action": action,
                },
            )
        return rows

    def ping(self) -> None:
        with self._tx() as s:
            s.fetchone(q("ping"))

    # footage -----------------------------------------------------------------------------
    def cameras(self) -> list[Camera]:
        with self._tx() as s:
            return [_camera(r) for r in s.fetchall(q("visible_cameras"))]

    def camera(self, camera_id: str) -> Camera | None:
        with self._tx() as s:
            row = s.fetchone(q("visible_camera"), {"id": camera_id})
        return None if row is None else _camera(row)

    def recordings_page(
        self,
        camera_id: str,
        start: datetime,
        end: datetime,
        *,
        limit: int,
        after: tuple[datetime, int] | None = None,
    ) -> list[Recording] | None:
        """One page of a visible camera's recordings; None when the camera is not visible."""
        params: dict[str, Any] = {
            "camera_id": camera_id,
            "start": start,
            "end": end,
            "limit": limit,
        }
        name = "recordings_page"
        if after is not None:
            name = "recordings_page_after"
            params.update(after_start=after[0], after_id=after[1])
        with self._tx() as s:
            if s.fetchone(q("visible_camera"), {"id": camera_id}) is None:
                return None
            rows = s.fetchall(q(name), params)
        return [visible_recording(r) for r in rows]

    def recording(self, recording_id: int) -> tuple[Recording, list[GrantRecord]] | None:
        with self._tx() as s:
            row = s.fetchone(q("visible_recording"), {"id": recording_id})
            if row is None:
                return None
            rec = visible_recording(row)
            return rec, self._acl(s, rec)

    def with_recording(
        self, recording_id: int, issue: Callable[[Recording], tuple[T, AuditEntry]]
    ) -> T:
        """Run ``issue`` on a visible recording and write its audit entry in the same
        transaction: nothing is handed out unless the audit row commits."""
        with self._tx() as s:
            row = s.fetchone(q("visible_recording"), {"id": recording_id})
            if row is None:
                raise NotFound(f"no recording {recording_id}")
            result, entry = issue(visible_recording(row))
            self._audit(s, entry)
        return result


def _lookup(s: Session, kind: str, key: str | int) -> Row:
    """A user or group by id (an ``int``) or by name (a ``str``, never read as an id)."""
    if isinstance(key, bool):
        raise TypeError(f"{kind} must be a name or an id, not {key!r}")
    if isinstance(key, int):
        row = s.fetchone(q(f"get_{kind}"), {"id": key})
    else:
        row = s.fetchone(q(f"get_{kind}_by_name"), {"name": key})
    if row is None:
        raise UnknownPrincipal(kind, key)
    return row


def _check_name(kind: str, name: str) -> None:
    # the schema refuses it too (CHECK *_name_not_numeric); this says why, in words
    if name.isascii() and name.isdigit():
        raise InputError(f"invalid {kind} name {name!r}: a name cannot be all digits")


def _integrity(exc: IntegrityViolation) -> Exception:
    if exc.sqlstate == _UNIQUE_VIOLATION:
        return InputError(f"already exists: {exc}")
    if exc.sqlstate == _CHECK_VIOLATION:
        return InputError(f"invalid value: {exc}")
    if exc.sqlstate == _FOREIGN_KEY_VIOLATION:
        return NotFound(f"refers to something that does not exist: {exc}")
    return exc


class RoleConnector:
    """Runs every transaction of ``inner`` as ``role`` (``SET LOCAL ROLE``).

    Transaction-local like the acting user, so a pooled connection never keeps it. With a
    superuser or owner login this drops to the unprivileged API role: the policies apply.
    """

    def __init__(self, inner: Connector, role: str) -> None:
        if not role.replace("_", "").isalnum():
            raise InputError(f"invalid database role name {role!r}")
        self._inner = inner
        self._role = role

    @contextmanager
    def transaction(self, *, acting_user: int | None = None) -> Iterator[Session]:
        with self._inner.transaction(acting_user=acting_user) as s:
            s.execute(f'SET LOCAL ROLE "{self._role}"')
            yield s

    def close(self) -> None:
        self._inner.close()


# re-exported for callers that only need the record types
__all__ = [
    "AccessCatalog",
    "AuditEntry",
    "GrantRecord",
    "Group",
    "Identity",
    "RoleConnector",
    "TokenInfo",
    "User",
]

"""Access-control rules in plain Python: permissions, grant coverage, tokens, cursors.

PostgreSQL enforces access with row-level security (``migrations/0002_access.sql``); this
module states the same rules without any SQL, so tests can use it as an independent oracle
and the API can decide what the database does not (e.g. ``export`` versus ``view``).

The coverage rule: a grant covers a recording when it is not revoked, not expired
(``expires_at`` strictly in the future), held by the user or by one of the user's groups,
on the recording's camera, and — if it has a footage window — the recording OVERLAPS
``[window_start, window_end]`` (strictly: ``window_start < end and start < window_end``).
What the user may see of it is clipped: ``visible_range`` is the union of their covering
windows intersected with the recording (the whole recording for an unwindowed grant). A
disabled user sees nothing; an enabled admin user sees everything.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from camvault.errors import InputError

TOKEN_PREFIX = "cvt_"
TOKEN_HINT_LEN = len(TOKEN_PREFIX) + 6


class Permission(IntEnum):
    """Ordered: each permission implies the ones below it."""

    VIEW = 1
    EXPORT = 2
    ADMIN = 3

    @classmethod
    def parse(cls, value: str) -> Permission:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise InputError(
                f"invalid permission {value!r}: use one of view, export, admin"
            ) from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Principal:
    """The acting user, as the ACL rules need it."""

    user_id: int
    group_ids: frozenset[int] = frozenset()
    is_admin: bool = False
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class Grant:
    """One grant: ``permission`` on one camera for exactly one user or group, optionally limited to
    a footage window [window_start, window_end) and an expiry; revoked grants keep their row."""

    id: int
    camera_id: str
    permission: Permission
    user_id: int | None = None
    group_id: int | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def __post_init__(self) -> None:
        if (self.user_id is None) == (self.group_id is None):
            raise InputError("a grant is held by exactly one of a user or a group")
        validate_window(self.window_start, self.window_end)

    @property
    def windowed(self) -> bool:
        return self.window_start is not None


def validate_window(start: datetime | None, end: datetime | None) -> None:
    if (start is None) != (end is None):
        raise InputError("a footage window needs both --from and --to")
    if start is not None and end is not None and end <= start:
        raise InputError("the footage window must end after it starts (--to after --from)")


def is_active(grant: Grant, now: datetime) -> bool:
    return grant.revoked_at is None and (grant.expires_at is None or grant.expires_at > now)


def applies_to(grant: Grant, who: Principal) -> bool:
    if who.disabled:
        return False
    if grant.user_id is not None:
        return grant.user_id == who.user_id
    return grant.group_id in who.group_ids


def covers(grant: Grant, camera_id: str, start: datetime, end: datetime, now: datetime) -> bool:
    """Does ``grant`` (whoever holds it) cover the recording [start, end] of ``camera_id``?"""
    if not is_active(grant, now) or grant.camera_id != camera_id:
        return False
    if grant.window_start is None or grant.window_end is None:
        return True
    return grant.window_start < end and start < grant.window_end


Span = tuple[datetime, datetime]


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Union of closed intervals, sorted; touching intervals merge."""
    out: list[Span] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def visible_range(
    grants: Iterable[Grant],
    who: Principal,
    camera_id: str,
    start: datetime,
    end: datetime,
    now: datetime,
    need: Permission = Permission.VIEW,
) -> list[Span]:
    """The parts of [start, end] ``who`` may see with at least ``need``: the union of their
    covering grants' windows clipped to it (all of it for an unwindowed grant or an admin).
    The same rule as ``camvault_acl_range`` in SQL."""
    if who.disabled:
        return []
    if who.is_admin:
        return [(start, end)]
    spans = [
        (max(start, g.window_start or start), min(end, g.window_end or end))
        for g in grants
        if g.permission >= need and applies_to(g, who) and covers(g, camera_id, start, end, now)
    ]
    return merge_spans(spans)


def effective(
    grants: Iterable[Grant],
    who: Principal,
    camera_id: str,
    start: datetime,
    end: datetime,
    now: datetime,
) -> Permission | None:
    """The strongest permission ``who`` holds on this recording, or None (not visible)."""
    if who.disabled:
        return None
    if who.is_admin:
        return Permission.ADMIN
    held = [
        g.permission for g in grants if applies_to(g, who) and covers(g, camera_id, start, end, now)
    ]
    return max(held, default=None)


def can_see_camera(grants: Iterable[Grant], who: Principal, camera_id: str, now: datetime) -> bool:
    """A camera is visible with any active grant on it, windowed or not."""
    if who.disabled:
        return False
    if who.is_admin:
        return True
    return any(
        g.camera_id == camera_id and is_active(g, now) and applies_to(g, who) for g in grants
    )


# Tokens ----------------------------------------------------------------------------------
def new_token() -> str:
    """A bearer token: 256 random bits, URL-safe, with a recognisable prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def token_hint(token: str) -> str:
    return token[:TOKEN_HINT_LEN]

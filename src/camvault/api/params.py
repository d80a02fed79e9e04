"""Parsing and validating the API's query parameters, and the opaque page cursor.

Pure functions. Every failure is an ``ApiError`` with a 4xx status and the offending
field's name, so hostile input can never reach PostgreSQL as something it rejects (500).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from camvault.keys import CAMERA_ID_RE

MAX_BIGINT = 2**63 - 1
# \Z, not $ (which also matches before a trailing newline); always used with fullmatch
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
ACTION_RE = re.compile(r"\A[a-z][a-z_.]{0,31}\Z")


class ApiError(Exception):
    """An error answered to the client as ``{"detail": message, "field": field}``."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers
        self.extra = extra or {}


def bad(field: str, message: str) -> ApiError:
    return ApiError(400, f"{field}: {message}", field)


def parse_time(value: str | None, field: str) -> datetime | None:
    """ISO 8601 with a zone; naive times are refused, not guessed."""
    if value is None or value == "":
        return None
    if len(value) > 64:
        raise bad(field, "too long for an ISO 8601 time")
    try:
        dt = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise bad(field, "not an ISO 8601 time (e.g. 2026-11-26T13:00:00Z)") from None
    if dt.tzinfo is None:
        raise bad(field, "has no time zone; add Z or an offset like +01:00")
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError):
        raise bad(field, "out of range") from None


def time_range(
    start: str | None,
    end: str | None,
    *,
    now: datetime,
    max_span: timedelta,
    default_span: timedelta = timedelta(hours=24),
) -> tuple[datetime, datetime]:
    t_end = parse_time(end, "end")
    t_start = parse_time(start, "start")
    try:
        if t_end is None:
            t_end = t_start + default_span if t_start is not None else now
        if t_start is None:
            t_start = t_end - default_span
    except OverflowError:  # a default span past year 1 or 9999
        raise bad("start" if start else "end", "out of range") from None
    if t_end <= t_start:
        raise bad("end", "must be after start")
    if t_end - t_start > max_span:
        raise bad("end", f"the range is longer than the maximum of {max_span.days} day(s)")
    return t_start, t_end


def camera_id(value: str) -> str:
    if not CAMERA_ID_RE.fullmatch(value):
        raise bad("camera_id", "use 1-64 of A-Z a-z 0-9 _ . - (starting with a letter or digit)")
    return value


def name(value: str, field: str = "name") -> str:
    if not NAME_RE.fullmatch(value):
        raise bad(field, "use 1-64 of A-Z a-z 0-9 _ . @ - (starting with a letter or digit)")
    return value


# Cursor ----------------------------------------------------------------------------------
# base64url(JSON) of the last row's (start_time, id) plus the query it belongs to (camera
# and range), so the next page needs no range and a cursor cannot be replayed elsewhere.
# Not secret: tampering only moves the page, and row-level security still decides what
# is returned.


def encode_cursor(
    camera: str, start: datetime, end: datetime, last_start: datetime, last_id: int
) -> str:
    payload = {
        "c": camera,
        "r": [start.isoformat(), end.isoformat()],
        "s": last_start.isoformat(),
        "i": last_id,
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class Cursor:
    """The decoded page cursor of a recordings listing: the listing's camera and range (a cursor
    only continues the listing it came from) and the last row seen."""

    camera: str
    start: datetime  # the range of the listing the cursor came from
    end: datetime
    last_start: datetime
    last_id: int


def _aware(value: object) -> datetime:
    dt = datetime.fromisoformat(value) if isinstance(value, str) else None
    if dt is None or dt.tzinfo is None:
        raise ValueError("not an aware ISO time")
    return dt.astimezone(UTC)


def decode_cursor(cursor: str, camera: str) -> Cursor:
    """The cursor's own query (camera, range) and position; the caller checks any
    explicit range against it (``page_range``)."""
    if len(cursor) > 512:
        raise bad("cursor", "too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        r0, r1 = data["r"]
        c = Cursor(data["c"], _aware(r0), _aware(r1), _aware(data["s"]), data["i"])
    except (ValueError, KeyError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise bad("cursor", "malformed; pass the next_cursor of the previous page") from None
    if (
        not isinstance(c.last_id, int)
        or isinstance(c.last_id, bool)
        or not 0 <= c.last_id <= MAX_BIGINT
        or c.end <= c.start
    ):
        raise bad("cursor", "malformed; pass the next_cursor of the previous page")
    if c.camera != camera:
        raise bad("cursor", "belongs to a different camera")
    return c


def page_range(
    start: str | None,
    end: str | None,
    cursor: Cursor | None,
    *,
    now: datetime,
    max_span: timedelta,
) -> tuple[datetime, datetime]:
    """The listing's range: the cursor's own when one is given (the default range moves
    with "now", a cursor must not), which an explicit start/end must then equal."""
    if cursor is None:
        return time_range(start, end, now=now, max_span=max_span)
    for given, field, want in ((start, "start", cursor.start), (end, "end", cursor.end)):
        t = parse_time(given, field)
        if t is not None and t != want:
            raise bad("cursor", f"belongs to a different time range ({field} differs)")
    if cursor.end - cursor.start > max_span:
        raise bad("cursor", "its range is longer than the maximum")
    return cursor.start, cursor.end

"""Object key naming: deterministic from (camera, start time), sortable by time per camera.

``{prefix}{camera_id}/{YYYY}/{MM}/{DD}/{camera_id}_{YYYYmmddTHHMMSS}Z.{ext}``

Sub-second starts are truncated to the second in the key, so the key is stable across
retries and replays. Two segments of one camera cannot start within the same second:
within a run they are minutes long, and a fleet node taking a camera over starts nothing
before the previous holder's last segment ended nor in the second that one began (the
lease carries where: the nodes' recorders place runs on their own clocks, up to ~1 s
apart; ``Timeline.handoff_floor``). ``parse_key`` inverts it for the reconciler.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from camvault.errors import InputError

# \Z, not $: `$` also matches before a trailing newline ("lobby-1\n"). Use fullmatch.
CAMERA_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_KEY_RE = re.compile(
    r"\A(?P<camera>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P=camera)_(?P<stamp>\d{8}T\d{6})Z\.(?P<ext>[a-z0-9]{1,8})\Z",
    re.ASCII,  # \d is 0-9 only, not every Unicode digit
)
ALLOWED_EXTS = frozenset({"mp4", "mkv", "ts", "mov"})


def validate_camera_id(camera_id: str) -> str:
    """Camera ids become key path parts: keep them to a safe, bounded alphabet."""
    if not CAMERA_ID_RE.fullmatch(camera_id):
        raise InputError(
            f"invalid camera id {camera_id!r}: use 1-64 of A-Z a-z 0-9 _ . - "
            "(starting with a letter or digit)"
        )
    return camera_id


def normalize_prefix(prefix: str) -> str:
    """'' stays ''; 'cctv' and 'cctv/' both become 'cctv/'."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def object_key(prefix: str, camera_id: str, start: datetime, ext: str) -> str:
    if start.tzinfo is None:
        raise ValueError("start time must be timezone-aware")
    validate_camera_id(camera_id)
    ext = ext.lower().lstrip(".")
    if ext not in ALLOWED_EXTS:
        raise InputError(f"unsupported container extension {ext!r}")
    t = start.astimezone(UTC)
    return (
        f"{normalize_prefix(prefix)}{camera_id}/{t:%Y/%m/%d}/{camera_id}_{t:%Y%m%dT%H%M%S}Z.{ext}"
    )


def camera_prefix(prefix: str, camera_id: str) -> str:
    return f"{normalize_prefix(prefix)}{validate_camera_id(camera_id)}/"


def parse_key(prefix: str, key: str) -> tuple[str, datetime, str] | None:
    """(camera_id, start truncated to the second, ext) for a camvault key, else None."""
    p = normalize_prefix(prefix)
    if not key.startswith(p):
        return None
    m = _KEY_RE.fullmatch(key[len(p) :])
    if m is None:
        return None
    start = datetime.strptime(m["stamp"], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    if (start.year, start.month, start.day) != (int(m["y"]), int(m["m"]), int(m["d"])):
        return None
    return m["camera"], start, m["ext"]

"""Request and response bodies of the API (they make up the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from camvault.api.params import MAX_BIGINT
from camvault.catalog.access import GrantRecord, Group, TokenInfo, User
from camvault.models import Camera, Recording

PermissionName = Literal["view", "export", "admin"]
# Names are never read as ids (they cannot be all digits); an id goes in a `*_id` field.
_BY_NAME = "by name (never read as an id; give `{0}_id` for an id)"
# pydantic runs these as Rust regexes, where `$` is the end of the text (no newline before)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
CAMERA_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CameraOut(BaseModel):
    """A camera the caller holds a grant on."""

    id: str
    name: str
    segment_seconds: int | None
    enabled: bool

    @classmethod
    def of(cls, c: Camera) -> CameraOut:
        return cls(id=c.id, name=c.name, segment_seconds=c.segment_seconds, enabled=c.enabled)


class SpanOut(BaseModel):
    """A visible part [start, end) of a recording (a windowed grant shows only part of it)."""

    start: datetime
    end: datetime


class RecordingOut(BaseModel):
    """One recording (one S3 object): camera, time range, media facts, storage class, checksum and
    where it is stored."""

    id: int
    camera_id: str
    start_time: datetime
    end_time: datetime
    duration_seconds: float
    size_bytes: int
    codec: str
    width: int
    height: int
    storage_class: str
    checksum_algorithm: str
    checksum: str
    s3_bucket: str
    s3_key: str
    clipped: bool = Field(
        False, description="a windowed grant shows only part of it: see visible_ranges"
    )
    visible_ranges: list[SpanOut] = Field(
        default_factory=list, description="what the caller may see and play of it"
    )

    @classmethod
    def of(cls, r: Recording) -> RecordingOut:
        assert r.id is not None
        visible = r.visible if r.visible is not None else ((r.start_time, r.end_time),)
        return cls(
            id=r.id,
            camera_id=r.camera_id,
            start_time=r.start_time,
            end_time=r.end_time,
            duration_seconds=r.duration_seconds,
            size_bytes=r.size_bytes,
            codec=r.codec,
            width=r.width,
            height=r.height,
            storage_class=r.storage_class,
            checksum_algorithm=r.checksum_algorithm,
            checksum=r.checksum,
            s3_bucket=r.s3_bucket,
            s3_key=r.s3_key,
            clipped=r.clipped,
            visible_ranges=[SpanOut(start=a, end=b) for a, b in visible],
        )


class RecordingPage(BaseModel):
    """One page of a camera's recordings in [start, end), oldest first; ``next_cursor`` continues
    it."""

    camera_id: str
    start: datetime
    end: datetime
    items: list[RecordingOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class GrantOut(BaseModel):
    """One grant: who (user or group) may do what (view, export, admin) on which camera, and within
    which window and until when."""

    id: int
    camera_id: str
    permission: PermissionName
    user_id: int | None
    user: str | None
    group_id: int | None
    group: str | None
    window_start: datetime | None
    window_end: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime | None

    @classmethod
    def of(cls, g: GrantRecord) -> GrantOut:
        return cls.model_validate(g.as_dict())


class RecordingDetail(RecordingOut):
    """A recording with the grants that make it visible."""

    acl: list[GrantOut] = Field(description="the grants covering this recording")


class PlaybackOut(BaseModel):
    """A short-lived URL to play one recording."""

    recording_id: int
    url: str
    expires_at: datetime
    ttl_seconds: int
    clipped: bool = Field(
        False,
        description="true: `url` is the API's media route (send the bearer token), which "
        "streams only the footage inside the caller's window",
    )


class UserOut(BaseModel):
    """A camvault user."""

    id: int
    name: str
    is_admin: bool
    disabled: bool
    created_at: datetime | None

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls(
            id=u.id, name=u.name, is_admin=u.is_admin, disabled=u.disabled, created_at=u.created_at
        )


class UserIn(_In):
    """A user to add."""

    name: str = Field(pattern=NAME_PATTERN)
    is_admin: bool = False


class UserPatch(_In):
    """Changes to a user; fields left out stay as they are."""

    is_admin: bool | None = None
    disabled: bool | None = None


class GroupOut(BaseModel):
    """A group and the names of its members."""

    id: int
    name: str
    members: list[str]

    @classmethod
    def of(cls, g: Group) -> GroupOut:
        return cls(id=g.id, name=g.name, members=list(g.members))


class GroupIn(_In):
    """A group to add."""

    name: str = Field(pattern=NAME_PATTERN)


def _name_ref(kind: str) -> Any:
    return Field(None, pattern=NAME_PATTERN, description=f"the {kind} " + _BY_NAME.format(kind))


def _id_ref(kind: str) -> Any:
    return Field(None, ge=1, le=MAX_BIGINT, description=f"the {kind} by id")


class MemberIn(_In):
    """Exactly one of `user`, `user_id`."""

    user: str | None = _name_ref("user")
    user_id: int | None = _id_ref("user")


class GrantIn(_In):
    """Exactly one of `user`, `user_id`, `group`, `group_id`."""

    camera_id: str = Field(pattern=CAMERA_PATTERN)
    permission: PermissionName = "view"
    user: str | None = _name_ref("user")
    user_id: int | None = _id_ref("user")
    group: str | None = _name_ref("group")
    group_id: int | None = _id_ref("group")
    window_start: datetime | None = None
    window_end: datetime | None = None
    expires_at: datetime | None = None


class TokenIn(_In):
    """Exactly one of `user`, `user_id`."""

    user: str | None = _name_ref("user")
    user_id: int | None = _id_ref("user")
    name: str = Field("", max_length=128, pattern=r"^[^\x00]*$")
    expires_at: datetime | None = None


class TokenOut(BaseModel):
    """An API token's record; never the token itself (only its hash is stored)."""

    id: int
    user_id: int
    user: str | None
    hint: str
    name: str
    created_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, t: TokenInfo) -> TokenOut:
        return cls(
            id=t.id,
            user_id=t.user_id,
            user=t.user_name,
            hint=t.hint,
            name=t.name,
            created_at=t.created_at,
            expires_at=t.expires_at,
            revoked_at=t.revoked_at,
            last_used_at=t.last_used_at,
        )


class TokenCreated(TokenOut):
    """A new API token: the record and, this once, the token."""

    token: str = Field(description="the bearer token; shown once, only its hash is stored")


class AuditOut(BaseModel):
    """One audit log entry: who did what, to which camera/recording, from where."""

    id: int
    at: datetime
    user_id: int | None
    user_name: str
    actor: str = Field(description="`user:<name>` (API), `os:<login>` (CLI) or `system`")
    action: str
    camera_id: str | None
    recording_id: int | None
    recording_start: datetime | None
    s3_key: str | None
    client_addr: str | None
    user_agent: str | None
    detail: dict[str, Any]


class AuditPage(BaseModel):
    """One page of the audit log, newest first; ``next_before_id`` continues it."""

    items: list[AuditOut]
    next_before_id: int | None

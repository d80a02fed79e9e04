"""Admin endpoints: users, groups, grants, tokens, and the audit log.

Guarded twice: the route needs an admin identity, and the writes run as the caller
through row-level security, whose write policies also require an admin.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from camvault.acl import Permission, validate_window
from camvault.api import params
from camvault.api.deps import AdminDep
from camvault.api.params import ACTION_RE, MAX_BIGINT
from camvault.api.schemas import (
    AuditOut,
    AuditPage,
    GrantIn,
    GrantOut,
    GroupIn,
    GroupOut,
    MemberIn,
    TokenCreated,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
    UserPatch,
)
from camvault.errors import InputError

router = APIRouter(prefix="/api", tags=["admin"])

Id = Annotated[int, Path(ge=1, le=MAX_BIGINT)]
_NO_CONTENT: dict[int | str, dict[str, Any]] = {204: {"description": "done"}}


def _input(field: str, exc: InputError) -> params.ApiError:
    return params.ApiError(400, f"{field}: {exc}", field)


# users -----------------------------------------------------------------------------------
@router.get("/users", response_model=list[UserOut])
def list_users(c: AdminDep) -> list[UserOut]:
    return [UserOut.of(u) for u in c.access.list_users()]


@router.post("/users", response_model=UserOut, status_code=201)
def add_user(c: AdminDep, body: UserIn) -> UserOut:
    try:
        user = c.access.add_user(body.name, is_admin=body.is_admin)
    except InputError as exc:
        raise _input("name", exc) from exc
    c.audit("user.add", detail={"user": user.name, "is_admin": user.is_admin})
    return UserOut.of(user)


@router.patch("/users/{user_id}", response_model=UserOut)
def update_user(c: AdminDep, user_id: Id, body: UserPatch) -> UserOut:
    user = c.access.update_user(user_id, is_admin=body.is_admin, disabled=body.disabled)
    c.audit("user.update", detail={"user": user.name, **body.model_dump(exclude_none=True)})
    return UserOut.of(user)


@router.delete("/users/{user_id}", status_code=204, responses=_NO_CONTENT)
def delete_user(c: AdminDep, user_id: Id) -> Response:
    c.access.delete_user(user_id)
    c.audit("user.delete", detail={"user_id": user_id})
    return Response(status_code=204)


# groups ----------------------------------------------------------------------------------
@router.get("/groups", response_model=list[GroupOut])
def list_groups(c: AdminDep) -> list[GroupOut]:
    return [GroupOut.of(g) for g in c.access.list_groups()]


@router.post("/groups", response_model=GroupOut, status_code=201)
def add_group(c: AdminDep, body: GroupIn) -> GroupOut:
    try:
        group = c.access.add_group(body.name)
    except InputError as exc:
        raise _input("name", exc) from exc
    c.audit("group.add", detail={"group": group.name})
    return GroupOut.of(group)


@router.delete("/groups/{group_id}", status_code=204, responses=_NO_CONTENT)
def delete_group(c: AdminDep, group_id: Id) -> Response:
    c.access.delete_group(group_id)
    c.audit("group.delete", detail={"group_id": group_id})
    return Response(status_code=204)


@router.post("/groups/{group_id}/members", status_code=204, responses=_NO_CONTENT)
def add_member(c: AdminDep, group_id: Id, body: MemberIn) -> Response:
    group, user = c.access.add_member(group_id, body.user)
    c.audit("group.add_member", detail={"group": group.name, "user": user.name})
    return Response(status_code=204)


@router.delete("/groups/{group_id}/members/{user_id}", status_code=204, responses=_NO_CONTENT)
def remove_member(c: AdminDep, group_id: Id, user_id: Id) -> Response:
    c.access.remove_member(group_id, user_id)
    c.audit("group.remove_member", detail={"group_id": group_id, "user_id": user_id})
    return Response(status_code=204)


# grants ----------------------------------------------------------------------------------
@router.get("/grants", response_model=list[GrantOut])
def list_grants(
    c: AdminDep,
    camera_id: Annotated[str | None, Query()] = None,
    include_revoked: bool = False,
) -> list[GrantOut]:
    cam = params.camera_id(camera_id) if camera_id is not None else None
    return [
        GrantOut.of(g) for g in c.access.list_grants(camera_id=cam, include_revoked=include_revoked)
    ]


@router.post("/grants", response_model=GrantOut, status_code=201)
def add_grant(c: AdminDep, body: GrantIn) -> GrantOut:
    if (body.user is None) == (body.group is None):
        raise params.bad("user", "give exactly one of user or group")
    for field in ("window_start", "window_end", "expires_at"):
        value = getattr(body, field)
        if value is not None and value.tzinfo is None:
            raise params.bad(field, "has no time zone; add Z or an offset like +01:00")
    try:
        validate_window(body.window_start, body.window_end)
    except InputError as exc:
        raise _input("window_end", exc) from exc
    grant = c.access.add_grant(
        camera_id=body.camera_id,
        permission=Permission.parse(body.permission),
        user=body.user,
        group=body.group,
        window_start=body.window_start,
        window_end=body.window_end,
        expires_at=body.expires_at,
    )
    c.audit("grant.add", camera_id=grant.grant.camera_id, detail=grant.as_dict())
    return GrantOut.of(grant)


@router.delete("/grants/{grant_id}", status_code=204, responses=_NO_CONTENT)
def revoke_grant(c: AdminDep, grant_id: Id) -> Response:
    c.access.revoke_grant(grant_id)
    c.audit("grant.revoke", detail={"grant_id": grant_id})
    return Response(status_code=204)


# tokens ----------------------------------------------------------------------------------
@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(c: AdminDep) -> list[TokenOut]:
    return [TokenOut.of(t) for t in c.access.list_tokens()]


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(c: AdminDep, body: TokenIn) -> TokenCreated:
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise params.bad("expires_at", "has no time zone; add Z or an offset like +01:00")
    token, info = c.access.create_token(body.user, name=body.name, expires_at=body.expires_at)
    c.audit("token.create", detail={"token_id": info.id, "user": info.user_name})
    return TokenCreated(**TokenOut.of(info).model_dump(), token=token)


@router.delete("/tokens/{token_id}", status_code=204, responses=_NO_CONTENT)
def revoke_token(c: AdminDep, token_id: Id) -> Response:
    c.access.revoke_token(token_id)
    c.audit("token.revoke", detail={"token_id": token_id})
    return Response(status_code=204)


# audit -----------------------------------------------------------------------------------
@router.get("/audit", response_model=AuditPage)
def audit_log(
    c: AdminDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
    user_id: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
    camera_id: Annotated[str | None, Query()] = None,
    action: Annotated[str | None, Query()] = None,
) -> AuditPage:
    """Newest first; pass `next_before_id` as `before_id` for the next page."""
    if action is not None and not ACTION_RE.match(action):
        raise params.bad("action", "unknown action name")
    cam = params.camera_id(camera_id) if camera_id is not None else None
    rows = c.access.list_audit(
        limit=limit, before_id=before_id, user_id=user_id, camera_id=cam, action=action
    )
    items = [AuditOut.model_validate(r) for r in rows]
    return AuditPage(items=items, next_before_id=items[-1].id if len(items) == limit else None)

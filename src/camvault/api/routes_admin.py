"""Admin endpoints: users, groups, grants, tokens, and the audit log.

Guarded twice: the route needs an admin identity, and the writes run as the caller
through row-level security, whose write policies also require an admin. Every change and
its audit row commit in one transaction (``AccessCatalog.atomic``). Users and groups in
bodies are given by name (``user``) or by id (``user_id``); a name is never read as an id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel

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
from camvault.errors import InputError, UnknownPrincipal

router = APIRouter(prefix="/api", tags=["admin"])

Id = Annotated[int, Path(ge=1, le=MAX_BIGINT)]
_NO_CONTENT: dict[int | str, dict[str, Any]] = {204: {"description": "done"}}


def _input(field: str, exc: InputError) -> params.ApiError:
    return params.ApiError(400, f"{field}: {exc}", field)


def _principal(body: BaseModel, *kinds: str) -> tuple[str, str | int]:
    """The one user/group reference in ``body``: (its field, the name or id)."""
    fields = [f for k in kinds for f in (k, f"{k}_id")]
    given = [(f, v) for f in fields if (v := getattr(body, f)) is not None]
    if len(given) != 1:
        raise params.bad(kinds[0], f"give exactly one of {', '.join(fields)}")
    return given[0]


def _unknown(exc: UnknownPrincipal) -> params.ApiError:
    return params.ApiError(404, f"{exc.field}: {exc}", exc.field)


# users -----------------------------------------------------------------------------------
@router.get("/users", response_model=list[UserOut])
def list_users(c: AdminDep) -> list[UserOut]:
    return [UserOut.of(u) for u in c.access.list_users()]


@router.post("/users", response_model=UserOut, status_code=201)
def add_user(c: AdminDep, body: UserIn) -> UserOut:
    try:
        with c.access.atomic() as tx:
            user = tx.add_user(body.name, is_admin=body.is_admin)
            tx.audit(
                c.audit_entry("user.add", detail={"user": user.name, "is_admin": user.is_admin})
            )
    except InputError as exc:
        raise _input("name", exc) from exc
    return UserOut.of(user)


@router.patch("/users/{user_id}", response_model=UserOut)
def update_user(c: AdminDep, user_id: Id, body: UserPatch) -> UserOut:
    with c.access.atomic() as tx:
        user = tx.update_user(user_id, is_admin=body.is_admin, disabled=body.disabled)
        detail = {"user": user.name, **body.model_dump(exclude_none=True)}
        tx.audit(c.audit_entry("user.update", detail=detail))
    return UserOut.of(user)


@router.delete("/users/{user_id}", status_code=204, responses=_NO_CONTENT)
def delete_user(c: AdminDep, user_id: Id) -> Response:
    with c.access.atomic() as tx:
        tx.delete_user(user_id)
        tx.audit(c.audit_entry("user.delete", detail={"user_id": user_id}))
    return Response(status_code=204)


# groups ----------------------------------------------------------------------------------
@router.get("/groups", response_model=list[GroupOut])
def list_groups(c: AdminDep) -> list[GroupOut]:
    return [GroupOut.of(g) for g in c.access.list_groups()]


@router.post("/groups", response_model=GroupOut, status_code=201)
def add_group(c: AdminDep, body: GroupIn) -> GroupOut:
    try:
        with c.access.atomic() as tx:
            group = tx.add_group(body.name)
            tx.audit(c.audit_entry("group.add", detail={"group": group.name}))
    except InputError as exc:
        raise _input("name", exc) from exc
    return GroupOut.of(group)


@router.delete("/groups/{group_id}", status_code=204, responses=_NO_CONTENT)
def delete_group(c: AdminDep, group_id: Id) -> Response:
    with c.access.atomic() as tx:
        tx.delete_group(group_id)
        tx.audit(c.audit_entry("group.delete", detail={"group_id": group_id}))
    return Response(status_code=204)


@router.post("/groups/{group_id}/members", status_code=204, responses=_NO_CONTENT)
def add_member(c: AdminDep, group_id: Id, body: MemberIn) -> Response:
    _, user_ref = _principal(body, "user")
    try:
        with c.access.atomic() as tx:
            group, user = tx.add_member(group_id, user_ref)
            detail = {"group": group.name, "user": user.name}
            tx.audit(c.audit_entry("group.add_member", detail=detail))
    except UnknownPrincipal as exc:
        raise _unknown(exc) from exc
    return Response(status_code=204)


@router.delete("/groups/{group_id}/members/{user_id}", status_code=204, responses=_NO_CONTENT)
def remove_member(c: AdminDep, group_id: Id, user_id: Id) -> Response:
    with c.access.atomic() as tx:
        group, user = tx.remove_member(group_id, user_id)
        detail = {"group": group.name, "user": user.name}
        tx.audit(c.audit_entry("group.remove_member", detail=detail))
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
    field, ref = _principal(body, "user", "group")
    kind = field.removesuffix("_id")
    for field in ("window_start", "window_end", "expires_at"):
        value = getattr(body, field)
        if value is not None and value.tzinfo is None:
            raise params.bad(field, "has no time zone; add Z or an offset like +01:00")
    try:
        validate_window(body.window_start, body.window_end)
    except InputError as exc:
        raise _input("window_end", exc) from exc
    try:
        with c.access.atomic() as tx:
            grant = tx.add_grant(
                camera_id=body.camera_id,
                permission=Permission.parse(body.permission),
                user=ref if kind == "user" else None,
                group=ref if kind == "group" else None,
                window_start=body.window_start,
                window_end=body.window_end,
                expires_at=body.expires_at,
            )
            entry = c.audit_entry("grant.add", camera_id=body.camera_id, detail=grant.as_dict())
            tx.audit(entry)
    except UnknownPrincipal as exc:
        raise _unknown(exc) from exc
    return GrantOut.of(grant)


@router.delete("/grants/{grant_id}", status_code=204, responses=_NO_CONTENT)
def revoke_grant(c: AdminDep, grant_id: Id) -> Response:
    with c.access.atomic() as tx:
        tx.revoke_grant(grant_id)
        tx.audit(c.audit_entry("grant.revoke", detail={"grant_id": grant_id}))
    return Response(status_code=204)


# tokens ----------------------------------------------------------------------------------
@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(c: AdminDep) -> list[TokenOut]:
    return [TokenOut.of(t) for t in c.access.list_tokens()]


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(c: AdminDep, body: TokenIn) -> TokenCreated:
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise params.bad("expires_at", "has no time zone; add Z or an offset like +01:00")
    _, user_ref = _principal(body, "user")
    try:
        with c.access.atomic() as tx:
            token, info = tx.create_token(user_ref, name=body.name, expires_at=body.expires_at)
            detail = {"token_id": info.id, "user": info.user_name}
            tx.audit(c.audit_entry("token.create", detail=detail))
    except UnknownPrincipal as exc:
        raise _unknown(exc) from exc
    return TokenCreated(**TokenOut.of(info).model_dump(), token=token)


@router.delete("/tokens/{token_id}", status_code=204, responses=_NO_CONTENT)
def revoke_token(c: AdminDep, token_id: Id) -> Response:
    with c.access.atomic() as tx:
        tx.revoke_token(token_id)
        tx.audit(c.audit_entry("token.revoke", detail={"token_id": token_id}))
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
    if action is not None and not ACTION_RE.fullmatch(action):
        raise params.bad("action", "unknown action name")
    cam = params.camera_id(camera_id) if camera_id is not None else None
    rows = c.access.list_audit(
        limit=limit, before_id=before_id, user_id=user_id, camera_id=cam, action=action
    )
    items = [AuditOut.model_validate(r) for r in rows]
    return AuditPage(items=items, next_before_id=items[-1].id if len(items) == limit else None)

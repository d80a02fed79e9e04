"""The ACL matrix: for every (user, camera, time) the API's listing, metadata and playback
agree with an independent oracle — the pure rules of ``camvault.acl``, fed from this
test's own description of the grants, never from the SQL policies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from camvault.acl import (
    Grant,
    Permission,
    Principal,
    applies_to,
    can_see_camera,
    covers,
    effective,
    visible_range,
)
from camvault.embedded import SeaweedFS
from tests.integration.access_env import (
    T0,
    Rec,
    add_cameras,
    add_recordings,
    api_client,
    bearer,
    service_access,
)
from tests.integration.export_env import FRAME, clip_api, frame_times, upload_footage

CAMERAS = ("cam1", "cam2", "cam3", "cam4")
MISSING_CAMERA = "cam-none"
H = timedelta(hours=1)


@dataclass
class World:
    recs: dict[str, list[Rec]]
    principals: dict[str, Principal] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)


def _seed(db_url: str, bucket: str) -> World:
    add_cameras(db_url, *CAMERAS)
    world = World({c: add_recordings(db_url, c, 8, bucket=bucket) for c in CAMERAS})
    r = world.recs
    now = datetime.now(UTC)
    with service_access(db_url) as acc:
        users = {
            name: acc.add_user(name, is_admin=name == "erin")
            for name in ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank")
        }
        groups = {name: acc.add_group(name) for name in ("ops", "night", "empty")}
        members = {
            "ops": ("bob", "frank", "hank"),
            "night": ("gina", "hank"),
            "empty": ("dave",),
        }
        for group, names in members.items():
            for name in names:
                acc.add_member(group, name)
        spec: list[dict[str, Any]] = [
            {"user": "alice", "camera_id": "cam1"},
            {"group": "ops", "camera_id": "cam2", "permission": Permission.EXPORT},
            # recordings 1-4 of cam3, by containment
            {
                "user": "bob",
                "camera_id": "cam3",
                "window_start": r["cam3"][1].start,
                "window_end": r["cam3"][4].end,
            },
            # straddles recording 5: covers recording 6 and the end of recording 5
            {
                "user": "bob",
                "camera_id": "cam3",
                "window_start": r["cam3"][5].start + timedelta(minutes=1),
                "window_end": r["cam3"][6].end,
            },
            {"user": "carol", "camera_id": "cam1", "expires_at": now - 24 * H},
            {"user": "carol", "camera_id": "cam2", "revoke": True},
            {
                "user": "carol",
                "camera_id": "cam4",
                "permission": Permission.ADMIN,
                "expires_at": now + 24 * H,
            },
            {"user": "frank", "camera_id": "cam1"},
            # a single recording shared: the window is exactly that recording
            {
                "user": "gina",
                "camera_id": "cam4",
                "window_start": r["cam4"][3].start,
                "window_end": r["cam4"][3].end,
            },
            {
                "group": "night",
                "camera_id": "cam1",
                "window_start": r["cam1"][0].start,
                "window_end": r["cam1"][1].end,
            },
        ]
        for item in spec:
            item = dict(item)
            revoke = item.pop("revoke", False)
            rec = acc.add_grant(**item)
            if revoke:
                acc.revoke_grant(rec.grant.id)
                rec = replace(rec, grant=replace(rec.grant, revoked_at=now))
            world.grants.append(rec.grant)
        group_ids = {name: g.id for name, g in groups.items()}
        for name, u in users.items():
            mine = frozenset(group_ids[g] for g, names in members.items() if name in names)
            world.principals[name] = Principal(u.id, mine, is_admin=u.is_admin)
            world.tokens[name] = acc.create_token(name)[0]
        acc.update_user(users["frank"].id, disabled=True)
        world.principals["frank"] = replace(world.principals["frank"], disabled=True)
    return world


# the oracle ------------------------------------------------------------------------------
def oracle_cameras(w: World, who: Principal, now: datetime) -> set[str]:
    return {c for c in CAMERAS if can_see_camera(w.grants, who, c, now)}


def oracle_visible(w: World, who: Principal, rec: Rec, now: datetime) -> bool:
    return effective(w.grants, who, rec.camera_id, rec.start, rec.end, now) is not None


def oracle_spans(w: World, who: Principal, rec: Rec, now: datetime) -> list[list[str]]:
    got = visible_range(w.grants, who, rec.camera_id, rec.start, rec.end, now)
    return [[a.isoformat(), b.isoformat()] for a, b in got]


def _spans(items: list[dict[str, str]]) -> list[list[str]]:
    return [
        [
            datetime.fromisoformat(i["start"]).isoformat(),
            datetime.fromisoformat(i["end"]).isoformat(),
        ]
        for i in items
    ]


def oracle_acl(w: World, who: Principal, rec: Rec, now: datetime) -> set[int]:
    covering = [g for g in w.grants if covers(g, rec.camera_id, rec.start, rec.end, now)]
    if who.is_admin:
        return {g.id for g in covering}
    admin_cams = {
        g.camera_id
        for g in w.grants
        if g.permission is Permission.ADMIN
        and not g.windowed
        and applies_to(g, who)
        and covers(g, g.camera_id, rec.start, rec.end, now)
    }
    return {g.id for g in covering if applies_to(g, who) or g.camera_id in admin_cams}


# the API ---------------------------------------------------------------------------------
def _list_all(client: httpx.Client, token: str, camera: str, start: datetime, end: datetime) -> Any:
    """Every page with a small limit; returns the ids in order, or the error status."""
    ids: list[int] = []
    cursor = None
    for _ in range(50):
        q: dict[str, Any] = {"start": start.isoformat(), "end": end.isoformat(), "limit": 3}
        if cursor:
            q["cursor"] = cursor
        resp = client.get(f"/api/cameras/{camera}/recordings", params=q, headers=bearer(token))
        if resp.status_code != 200:
            return resp.status_code
        page = resp.json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("pagination did not end")


def _windows(w: World) -> list[tuple[datetime, datetime]]:
    r = w.recs["cam1"]
    return [
        (T0 - H, T0 + 2 * H),  # everything
        (r[2].start + timedelta(minutes=1), r[4].start),  # straddles recording 2's middle
        (r[0].start - timedelta(minutes=1), r[1].end - timedelta(seconds=1)),
    ]


def check_matrix(client: httpx.Client, w: World) -> int:
    """Compare the API with the oracle for every user; returns playbacks issued."""
    now = datetime.now(UTC)
    issued = 0
    for name, who in w.principals.items():
        token = w.tokens[name]
        resp = client.get("/api/cameras", headers=bearer(token))
        if who.disabled:
            assert resp.status_code == 401, name
            continue
        assert resp.status_code == 200, (name, resp.text)
        assert {c["id"] for c in resp.json()} == oracle_cameras(w, who, now), name
        for cam in (*CAMERAS, MISSING_CAMERA):
            cam_visible = cam in oracle_cameras(w, who, now)
            for start, end in _windows(w):
                got = _list_all(client, token, cam, start, end)
                if not cam_visible:
                    assert got == 404, (name, cam)
                    continue
                want = [
                    r.id
                    for r in w.recs[cam]
                    if r.end > start and r.start < end and oracle_visible(w, who, r, now)
                ]
                assert got == want, (name, cam, start, end)
        for cam in CAMERAS:
            for rec in w.recs[cam]:
                visible = oracle_visible(w, who, rec, now)
                meta = client.get(f"/api/recordings/{rec.id}", headers=bearer(token))
                play = client.post(f"/api/recordings/{rec.id}/playback", headers=bearer(token))
                want_status = 200 if visible else 404
                assert (meta.status_code, play.status_code) == (want_status, want_status), (
                    name,
                    rec,
                    meta.text,
                    play.text,
                )
                if visible:
                    acl = {g["id"] for g in meta.json()["acl"]}
                    assert acl == oracle_acl(w, who, rec, now), (name, rec)
                    spans = oracle_spans(w, who, rec, now)
                    assert _spans(meta.json()["visible_ranges"]) == spans, (name, rec)
                    whole = spans == [[rec.start.isoformat(), rec.end.isoformat()]]
                    assert meta.json()["clipped"] is (not whole), (name, rec)
                    if whole:
                        assert rec.key in play.json()["url"]
                    else:  # never a presigned URL to the whole object
                        assert play.json()["url"] == f"/api/recordings/{rec.id}/media"
                        assert play.json()["clipped"] is True
                    issued += 1
                else:
                    # not visible answers exactly like not there
                    assert (
                        meta.json()
                        == client.get("/api/recordings/999999999", headers=bearer(token)).json()
                    )
    return issued


@pytest.fixture
def setup(db_url: str, bucket: str, seaweed: SeaweedFS) -> Any:
    world = _seed(db_url, bucket)
    with api_client(
        db_url,
        s3_endpoint=seaweed.endpoint_url,
        bucket=bucket,
        credentials=(seaweed.access_key, seaweed.secret_key),
    ) as (client, _):
        yield world, client


def _playback_audit(db_url: str) -> list[tuple[int, int]]:
    with psycopg.connect(db_url) as conn:
        return [
            (r[0], r[1])
            for r in conn.execute(
                "SELECT user_id, recording_id FROM audit_log WHERE action = 'playback'"
            )
        ]


def test_acl_matrix(setup: Any, db_url: str) -> None:
    world, client = setup
    issued = check_matrix(client, world)
    assert issued > 0
    audit = _playback_audit(db_url)
    assert len(audit) == issued  # every URL handed out has its audit row
    by_id = {p.user_id: n for n, p in world.principals.items()}
    for user_id, recording_id in audit:
        who = world.principals[by_id[user_id]]
        rec = next(r for rs in world.recs.values() for r in rs if r.id == recording_id)
        assert oracle_visible(world, who, rec, datetime.now(UTC))

    # change the grants under the API's feet: revoke one, expire another, re-enable frank
    now = datetime.now(UTC)
    alice_grant = next(g for g in world.grants if g.user_id == world.principals["alice"].user_id)
    ops_grant = next(g for g in world.grants if g.group_id is not None and g.camera_id == "cam2")
    with service_access(db_url) as acc:
        acc.revoke_grant(alice_grant.id)
        acc.update_user(world.principals["frank"].user_id, disabled=False)
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE grants SET expires_at = %s WHERE id = %s",
            (now - timedelta(seconds=1), ops_grant.id),
        )
    world.grants = [
        replace(g, revoked_at=now)
        if g.id == alice_grant.id
        else replace(g, expires_at=now - timedelta(seconds=1))
        if g.id == ops_grant.id
        else g
        for g in world.grants
    ]
    world.principals["frank"] = replace(world.principals["frank"], disabled=False)
    assert check_matrix(client, world) > 0


# partial-overlap windows, checked by decoding what each user can fetch ---------------------
WIN_CAM = "win"
SEC = timedelta(seconds=1)


def _ceil_second(t: datetime) -> datetime:
    """The first keyframe at or after ``t`` (footage has one keyframe per second)."""
    whole = t.replace(microsecond=0)
    return whole if whole == t else whole + SEC


def _frames_of(rec: Rec) -> list[datetime]:
    return [rec.start + i * FRAME for i in range(int((rec.end - rec.start) / FRAME))]


def test_windowed_grants_decoded(
    db_url: str, bucket: str, seaweed: SeaweedFS, s3: Any, tmp_path: Path
) -> None:
    add_cameras(db_url, WIN_CAM)
    recs = upload_footage(
        s3, bucket, db_url, WIN_CAM, [T0, T0 + 20 * SEC, T0 + 40 * SEC], 20, tmp_path
    )
    specs: dict[str, list[dict[str, Any]]] = {
        "full": [{"permission": Permission.VIEW}],
        "w1": [{"window": (T0 + 5.5 * SEC, T0 + 12.3 * SEC)}],  # inside recording 0
        "w2": [{"permission": Permission.EXPORT, "window": (T0 + 15 * SEC, T0 + 45 * SEC)}],
        "w3": [  # two windows inside recording 1, plus export on a part of one
            {"window": (T0 + 22 * SEC, T0 + 25 * SEC)},
            {"window": (T0 + 30 * SEC, T0 + 33.5 * SEC)},
            {"permission": Permission.EXPORT, "window": (T0 + 31 * SEC, T0 + 33 * SEC)},
        ],
    }
    grants: list[Grant] = []
    principals: dict[str, Principal] = {}
    tokens: dict[str, dict[str, str]] = {}
    with service_access(db_url) as acc:
        for name, items in specs.items():
            u = acc.add_user(name)
            principals[name] = Principal(u.id)
            tokens[name] = bearer(acc.create_token(name)[0])
            for it in items:
                ws, we = it.get("window", (None, None))
                g = acc.add_grant(
                    camera_id=WIN_CAM,
                    user=name,
                    permission=it.get("permission", Permission.VIEW),
                    window_start=ws,
                    window_end=we,
                )
                grants.append(g.grant)
    now = datetime.now(UTC)
    with clip_api(
        db_url,
        seaweed=seaweed,
        bucket=bucket,
        tmp=tmp_path,
    ) as api:
        http = api.client
        for name, who in principals.items():
            tok = tokens[name]
            listing = http.get(
                f"/api/cameras/{WIN_CAM}/recordings",
                params={"start": T0.isoformat(), "end": (T0 + 60 * SEC).isoformat()},
                headers=tok,
            ).json()["items"]
            listed = {i["id"]: _spans(i["visible_ranges"]) for i in listing}
            for rec in recs:
                view = visible_range(grants, who, WIN_CAM, rec.start, rec.end, now)
                export = visible_range(
                    grants, who, WIN_CAM, rec.start, rec.end, now, Permission.EXPORT
                )
                want = [[a.isoformat(), b.isoformat()] for a, b in view]
                assert listed.get(rec.id, []) == want, (name, rec)
                play = http.post(f"/api/recordings/{rec.id}/playback", headers=tok)
                if not view:
                    assert play.status_code == 404, (name, rec)
                    media = http.get(f"/api/recordings/{rec.id}/media", headers=tok)
                    assert media.status_code == 404
                    continue
                assert play.status_code == 200, (name, rec, play.text)
                if view == [(rec.start, rec.end)]:
                    data = httpx.get(play.json()["url"]).content
                    assert frame_times(data, rec.start, tmp_path) == _frames_of(rec)
                else:
                    assert play.json()["url"] == f"/api/recordings/{rec.id}/media"
                for a, b in view:
                    # ask for the whole recording: only the span overlapping it comes back
                    r = http.get(
                        f"/api/recordings/{rec.id}/media",
                        params={"start": a.isoformat(), "end": rec.end.isoformat()},
                        headers=tok,
                    )
                    assert r.status_code == 200, (name, rec, r.text)
                    assert r.headers["X-Camvault-Assembly"] == "splice"  # not ffmpeg's cut
                    origin = datetime.fromisoformat(r.headers["X-Camvault-Start"])
                    got = frame_times(r.content, origin, tmp_path)
                    expect = [t for t in _frames_of(rec) if _ceil_second(a) <= t < b]
                    assert got == expect, (name, rec, a, b)
                # export: exactly the oracle's export range, nothing wider
                for a, b in export:
                    body = {"camera_id": WIN_CAM, "start": a.isoformat(), "end": b.isoformat()}
                    r = http.post("/api/exports", headers=tok, json=body)
                    assert r.status_code == 202, (name, rec, r.text)
                    done = _wait_export(http, tok, r.json()["id"])
                    url = http.post(f"/api/exports/{done['id']}/download", headers=tok).json()
                    first = datetime.fromisoformat(done["actual_start"])
                    got = frame_times(httpx.get(url["url"]).content, first, tmp_path)
                    assert got and all(a <= t < b for t in got), (name, rec, a, b)
                    wider = {**body, "end": (b + SEC).isoformat()}
                    if b < rec.end:
                        assert http.post("/api/exports", headers=tok, json=wider).status_code == 403
                if not export:
                    body = {
                        "camera_id": WIN_CAM,
                        "start": view[0][0].isoformat(),
                        "end": view[0][1].isoformat(),
                    }
                    assert http.post("/api/exports", headers=tok, json=body).status_code == 403


def _wait_export(http: httpx.Client, tok: dict[str, str], export_id: int) -> dict[str, Any]:
    for _ in range(600):
        body: dict[str, Any] = http.get(f"/api/exports/{export_id}", headers=tok).json()
        if body["state"] in ("done", "failed"):
            assert body["state"] == "done", body
            return body
        time.sleep(0.2)
    raise AssertionError("export did not finish")

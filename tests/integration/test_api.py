"""The HTTP API on real PostgreSQL and SeaweedFS: tokens, playback URLs, audit, admin CRUD,
errors for hostile input (never 5xx, never a leak), health and metrics."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camvault.cli import main as cli_main
from camvault.embedded import SeaweedFS
from tests.integration.access_env import (
    T0,
    add_cameras,
    add_recordings,
    api_client,
    bearer,
    service_access,
)

SECRET_CAMERA = "vault-9"


@pytest.fixture
def env(db_url: str, bucket: str, seaweed: SeaweedFS, s3: Any) -> Any:
    add_cameras(db_url, "lobby-1", SECRET_CAMERA)
    recs = add_recordings(db_url, "lobby-1", 12, bucket=bucket)
    secret = add_recordings(db_url, SECRET_CAMERA, 3, bucket=bucket)
    for r in recs[:2]:
        s3.put_object(
            Bucket=bucket, Key=r.key, Body=b"video-" + r.key.encode(), ServerSideEncryption="AES256"
        )
    with service_access(db_url) as acc:
        acc.add_user("viewer")
        acc.add_user("boss", is_admin=True)
        acc.add_grant(camera_id="lobby-1", user="viewer")
        tokens = {n: acc.create_token(n)[0] for n in ("viewer", "boss")}
    return {"recs": recs, "secret": secret, "tokens": tokens, "bucket": bucket}


def _client(db_url: str, seaweed: SeaweedFS, bucket: str, **api: Any) -> Any:
    return api_client(
        db_url,
        s3_endpoint=seaweed.endpoint_url,
        bucket=bucket,
        credentials=(seaweed.access_key, seaweed.secret_key),
        api=api or None,
    )


@pytest.fixture
def client(env: Any, db_url: str, seaweed: SeaweedFS) -> Any:
    with _client(db_url, seaweed, env["bucket"], max_range_days=2) as (c, _):
        yield c


def test_presigned_url_plays_then_expires_and_unsigned_is_refused(
    env: Any, db_url: str, seaweed: SeaweedFS
) -> None:
    rec = env["recs"][0]
    with _client(db_url, seaweed, env["bucket"], presign_ttl_seconds=2) as (c, _):
        resp = c.post(f"/api/recordings/{rec.id}/playback", headers=bearer(env["tokens"]["viewer"]))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["ttl_seconds"] == 2 and body["recording_id"] == rec.id
    url = body["url"]
    got = httpx.get(url)
    assert got.status_code == 200 and got.content == b"video-" + rec.key.encode()
    parts = urlsplit(url)
    unsigned = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    assert httpx.get(unsigned).status_code in (401, 403)
    time.sleep(3.5)
    assert httpx.get(url).status_code in (401, 403)
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT u.name, a.recording_id, a.s3_key, a.client_addr, a.at"
            " FROM audit_log a JOIN users u ON u.id = a.user_id WHERE a.action = 'playback'"
        ).fetchall()
    assert len(row) == 1
    name, rid, key, addr, at = row[0]
    assert (name, rid, key, addr) == ("viewer", rec.id, rec.key, "127.0.0.1")
    assert abs(at - datetime.now(UTC)) < timedelta(minutes=1)


def test_audit_is_for_admins(client: httpx.Client, env: Any) -> None:
    rec = env["recs"][1]
    viewer, boss = bearer(env["tokens"]["viewer"]), bearer(env["tokens"]["boss"])
    assert client.post(f"/api/recordings/{rec.id}/playback", headers=viewer).status_code == 200
    assert client.get("/api/audit", headers=viewer).status_code == 403
    page = client.get("/api/audit", headers=boss, params={"action": "playback"}).json()
    assert [(i["user_name"], i["recording_id"], i["camera_id"]) for i in page["items"]] == [
        ("viewer", rec.id, "lobby-1")
    ]


def test_tokens_revoked_expired_or_unknown_are_401_and_never_logged(
    client: httpx.Client, env: Any, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with service_access(db_url) as acc:
        revoked, info = acc.create_token("viewer")
        acc.revoke_token(info.id)
        expired, _ = acc.create_token("viewer", expires_at=datetime.now(UTC) - timedelta(seconds=1))
        live, _ = acc.create_token("viewer", expires_at=datetime.now(UTC) + timedelta(hours=1))
        with psycopg.connect(db_url) as conn:
            stored = conn.execute("SELECT token_hash, hint FROM api_tokens").fetchall()
    for tok in (revoked, expired, "cvt_" + "x" * 43, "cvt_' OR 1=1 --", "z" * 300):
        resp = client.get("/api/cameras", headers={"Authorization": f"Bearer {tok}"})
        assert resp.status_code == 401, tok
        assert resp.headers["www-authenticate"] == "Bearer"
        assert tok not in resp.text
    assert client.get("/api/cameras").status_code == 401
    assert client.get("/api/cameras", headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.get("/api/cameras", headers=bearer(live)).status_code == 200
    # only hashes are stored, and no token value reaches any log record
    for tok in (revoked, expired, live, *env["tokens"].values()):
        assert tok not in caplog.text
        assert all(tok.encode() != h and tok not in hint for h, hint in stored)


def test_listing_paginates_with_overlap_semantics(client: httpx.Client, env: Any) -> None:
    recs, viewer = env["recs"], bearer(env["tokens"]["viewer"])
    start = recs[3].start + timedelta(minutes=2)  # straddles recording 3
    end = recs[9].start  # recording 9 starts exactly at end: excluded
    seen: list[int] = []
    cursor = None
    while True:
        q = {"start": start.isoformat(), "end": end.isoformat(), "limit": 2}
        if cursor:
            q["cursor"] = cursor
        page = client.get("/api/cameras/lobby-1/recordings", params=q, headers=viewer).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [r.id for r in recs[3:9]]
    # a cursor for another range is refused, naming the field
    other = client.get(
        "/api/cameras/lobby-1/recordings",
        params={"start": T0.isoformat(), "end": end.isoformat(), "cursor": cursor or "x"},
        headers=viewer,
    )
    assert other.status_code == 400 and other.json()["field"] == "cursor"


def test_paging_without_a_range_follows_the_cursor(
    env: Any, db_url: str, seaweed: SeaweedFS
) -> None:
    """``?limit=1`` then ``&cursor=`` with no range: the cursor carries its range, so the
    next page works although "now" has moved on (the default range re-anchored on the
    clock used to refuse it)."""
    recs, viewer = env["recs"], bearer(env["tokens"]["viewer"])
    with _client(db_url, seaweed, env["bucket"]) as (c, svc):
        now = [recs[-1].start + timedelta(hours=1)]
        object.__setattr__(svc, "clock", lambda: now[0])
        url = "/api/cameras/lobby-1/recordings"
        first = c.get(url, params={"limit": 1}, headers=viewer).json()
        now[0] += timedelta(seconds=7)
        seen = [i["id"] for i in first["items"]]
        cursor = first["next_cursor"]
        while cursor:
            r = c.get(url, params={"limit": 5, "cursor": cursor}, headers=viewer)
            assert r.status_code == 200, r.text
            assert (r.json()["start"], r.json()["end"]) == (first["start"], first["end"])
            seen += [i["id"] for i in r.json()["items"]]
            cursor = r.json()["next_cursor"]
        assert seen == [r.id for r in recs]
        # an explicit range that differs from the cursor's: 400 naming the cursor
        again = c.get(url, params={"limit": 1}, headers=viewer).json()["next_cursor"]
        clash = c.get(
            url, params={"cursor": again, "end": recs[-1].start.isoformat()}, headers=viewer
        )
        assert clash.status_code == 400 and clash.json()["field"] == "cursor"


def test_metadata_carries_the_acl_and_hides_others(client: httpx.Client, env: Any) -> None:
    rec, viewer = env["recs"][0], bearer(env["tokens"]["viewer"])
    meta = client.get(f"/api/recordings/{rec.id}", headers=viewer).json()
    assert meta["camera_id"] == "lobby-1" and meta["s3_key"] == rec.key
    assert [(g["user"], g["permission"], g["camera_id"]) for g in meta["acl"]] == [
        ("viewer", "view", "lobby-1")
    ]
    secret = env["secret"][0]
    for path in (f"/api/recordings/{secret.id}", f"/api/cameras/{SECRET_CAMERA}/recordings"):
        hidden = client.get(path, headers=viewer)
        assert hidden.status_code == 404 and SECRET_CAMERA not in hidden.text
    assert client.post(f"/api/recordings/{secret.id}/playback", headers=viewer).status_code == 404
    cams = client.get("/api/cameras", headers=viewer).json()
    assert [c["id"] for c in cams] == ["lobby-1"]


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/api/recordings/abc", {}, 422, "recording_id"),
        ("/api/recordings/0", {}, 422, "recording_id"),
        ("/api/recordings/-5", {}, 422, "recording_id"),
        (f"/api/recordings/{2**70}", {}, 422, "recording_id"),
        ("/api/cameras/lobby-1/recordings", {"start": "yesterday"}, 400, "start"),
        ("/api/cameras/lobby-1/recordings", {"end": "2026-11-20T10:00:00"}, 400, "end"),
        (
            "/api/cameras/lobby-1/recordings",
            {"start": "2026-11-20T10:00:00Z", "end": "2026-11-20T09:00:00Z"},
            400,
            "end",
        ),
        (
            "/api/cameras/lobby-1/recordings",
            {"start": "2026-11-01T00:00:00Z", "end": "2026-11-20T00:00:00Z"},
            400,
            "end",
        ),
        (
            "/api/cameras/lobby-1/recordings",
            {"cursor": "'; DROP TABLE recordings;--"},
            400,
            "cursor",
        ),
        ("/api/cameras/lobby-1/recordings", {"limit": "0"}, 422, "limit"),
        ("/api/cameras/lobby-1/recordings", {"limit": str(10**30)}, 400, "limit"),
        ("/api/cameras/lobby-1/recordings", {"limit": "ten"}, 422, "limit"),
        ("/api/cameras/bad id!/recordings", {}, 400, "camera_id"),
    ],
)
def test_malformed_input_is_4xx_naming_the_field(
    client: httpx.Client, env: Any, path: str, params: dict[str, str], status: int, field: str
) -> None:
    resp = client.get(path, params=params, headers=bearer(env["tokens"]["viewer"]))
    assert resp.status_code == status, resp.text
    assert resp.json()["field"] == field and field in resp.json()["detail"]


_HOSTILE = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "' OR 1=1 --",
            "1; DELETE FROM grants",
            "%00",
            "\x00",
            "9" * 40,
            "-1e309",
            "NaN",
            "2026-02-30T00:00:00Z",
            "0001-01-01T00:00:00+14:00",
            "0001-01-01T12:00:00Z",
            "9999-12-31T12:00:00Z",
            "9999-12-31T23:59:59-14:00",
            "../../etc/passwd",
            "\u0430\u200b\u202e\U0001d555",  # Cyrillic a, zero-width space, RTL override
            SECRET_CAMERA,
        ]
    ),
)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    camera=_HOSTILE,
    start=st.none() | _HOSTILE,
    end=st.none() | _HOSTILE,
    limit=st.none() | _HOSTILE,
    cursor=st.none() | _HOSTILE,
    rid=_HOSTILE,
)
def test_hostile_parameters_never_5xx_never_leak(
    client: httpx.Client,
    env: Any,
    camera: str,
    start: str | None,
    end: str | None,
    limit: str | None,
    cursor: str | None,
    rid: str,
) -> None:
    viewer = bearer(env["tokens"]["viewer"])
    q = {
        k: v
        for k, v in {"start": start, "end": end, "limit": limit, "cursor": cursor}.items()
        if v is not None
    }
    secret_keys = [r.key for r in env["secret"]]
    camera, rid_path = quote(camera, safe=""), quote(rid, safe="")
    for method, path, params in (
        ("GET", f"/api/cameras/{camera}/recordings", q),
        ("GET", f"/api/cameras/{camera}", {}),
        ("GET", f"/api/recordings/{rid_path}", {}),
        ("POST", f"/api/recordings/{rid_path}/playback", {}),
        ("GET", "/api/audit", {"camera_id": rid, "action": rid}),
    ):
        resp = client.request(method, path, params=params, headers=viewer)
        assert resp.status_code < 500, (method, path, params, resp.text)
        assert not any(k in resp.text for k in secret_keys)
        if resp.status_code == 200 and "items" in resp.json():
            assert all(i["camera_id"] == "lobby-1" for i in resp.json()["items"])


def test_archived_recording_answers_409_with_restore_hint(
    client: httpx.Client, env: Any, db_url: str
) -> None:
    rec = env["recs"][5]
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE recordings SET storage_class = 'GLACIER' WHERE id = %s", (rec.id,))
    resp = client.post(
        f"/api/recordings/{rec.id}/playback", headers=bearer(env["tokens"]["viewer"])
    )
    assert resp.status_code == 409
    assert resp.json()["restore"]["path"] == f"/api/recordings/{rec.id}/restore"
    with psycopg.connect(db_url) as conn:  # refused: no URL, so no audit entry
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)


def test_admin_crud_through_the_api(client: httpx.Client, env: Any) -> None:
    boss, viewer = bearer(env["tokens"]["boss"]), bearer(env["tokens"]["viewer"])
    assert client.post("/api/users", json={"name": "x"}, headers=viewer).status_code == 403
    user = client.post("/api/users", json={"name": "inspector"}, headers=boss)
    assert user.status_code == 201, user.text
    dup = client.post("/api/users", json={"name": "inspector"}, headers=boss)
    assert dup.status_code == 400 and dup.json()["field"] == "name"
    bad = client.post("/api/users", json={"name": "bad name\x00"}, headers=boss)
    assert bad.status_code == 422 and bad.json()["field"] == "name"
    group = client.post("/api/groups", json={"name": "investigators"}, headers=boss).json()
    r = client.post(f"/api/groups/{group['id']}/members", json={"user": "inspector"}, headers=boss)
    assert r.status_code == 204
    rec = env["recs"][4]
    grant = client.post(
        "/api/grants",
        json={
            "group": "investigators",
            "camera_id": "lobby-1",
            "window_start": rec.start.isoformat(),
            "window_end": rec.end.isoformat(),
        },
        headers=boss,
    )
    assert grant.status_code == 201, grant.text
    bad_window = client.post(
        "/api/grants",
        json={
            "user": "inspector",
            "camera_id": "lobby-1",
            "window_start": rec.end.isoformat(),
            "window_end": rec.start.isoformat(),
        },
        headers=boss,
    )
    assert bad_window.status_code == 400 and bad_window.json()["field"] == "window_end"
    unknown_cam = client.post(
        "/api/grants", json={"user": "inspector", "camera_id": "nope"}, headers=boss
    )
    assert unknown_cam.status_code == 400 and "nope" in unknown_cam.json()["detail"]
    created = client.post("/api/tokens", json={"user": "inspector"}, headers=boss)
    assert created.status_code == 201
    tok = bearer(created.json()["token"])
    page = client.get(
        "/api/cameras/lobby-1/recordings", params={"start": T0.isoformat()}, headers=tok
    ).json()
    assert [i["id"] for i in page["items"]] == [rec.id]  # exactly the shared recording
    assert client.delete(f"/api/grants/{grant.json()['id']}", headers=boss).status_code == 204
    assert client.get(f"/api/recordings/{rec.id}", headers=tok).status_code == 404
    assert client.delete(f"/api/tokens/{created.json()['id']}", headers=boss).status_code == 204
    assert client.get("/api/cameras", headers=tok).status_code == 401
    users = {u["name"] for u in client.get("/api/users", headers=boss).json()}
    assert users == {"viewer", "boss", "inspector"}
    actions = [i["action"] for i in client.get("/api/audit", headers=boss).json()["items"]]
    assert actions[:3] == ["token.revoke", "grant.revoke", "token.create"]


def test_health_openapi_and_metrics(
    client: httpx.Client, env: Any, db_url: str, seaweed: SeaweedFS
) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["checks"] == {"database": "ok", "s3": "ok"}
    spec = client.get("/openapi.json").json()
    for path in (
        "/api/cameras",
        "/api/cameras/{camera_id}/recordings",
        "/api/recordings/{recording_id}",
        "/api/recordings/{recording_id}/playback",
        "/api/grants",
        "/api/users",
        "/api/tokens",
        "/api/audit",
    ):
        assert path in spec["paths"], path
    client.get("/api/cameras", headers=bearer(env["tokens"]["viewer"]))
    metrics = client.get("/metrics").text
    assert (
        'camvault_api_request_duration_seconds_count{method="GET",route="/api/cameras",'
        'status="200"}' in metrics
    )
    assert "camvault_spool_depth 3.0" in metrics
    assert "<html" in client.get("/").text
    # S3 pointing at a bucket that does not exist: unhealthy, named
    with _client(db_url, seaweed, "no-such-bucket-xyz") as (c, _):
        sick = c.get("/healthz")
    assert sick.status_code == 503 and sick.json()["checks"]["s3"] == "degraded"


def test_cli_contract(
    env: Any, make_settings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = make_settings()
    cfg = tmp_path / "camvault.toml"
    cfg.write_text(
        f'[database]\nurl = "{s.database.url}"\n[s3]\nbucket = "{s.s3.bucket}"\n'
        f'endpoint_url = "{s.s3.endpoint_url}"\naddressing_style = "path"\n'
        f'[spool]\ndir = "{s.spool.dir}"\n'
    )

    def run(*argv: str) -> tuple[int, str]:
        code = cli_main(["--config", str(cfg), *argv])
        return code, capsys.readouterr().out

    assert run("users", "add", "ops-lead", "--admin")[0] == 0
    assert run("users", "add", "guard")[0] == 0
    assert run("users", "add", "guard")[0] == 2  # already exists: input error
    assert run("groups", "add", "night-shift")[0] == 0
    assert run("groups", "add-member", "night-shift", "guard")[0] == 0
    code, out = run(
        "grants",
        "add",
        "--group",
        "night-shift",
        "--camera",
        "lobby-1",
        "--from",
        "2026-11-20T08:00:00Z",
        "--to",
        "2026-11-20T09:00:00Z",
        "--expires",
        "2030-01-01T00:00:00Z",
        "--json",
    )
    assert code == 0
    import json

    grant = json.loads(out)
    assert grant["permission"] == "view" and grant["group"] == "night-shift"
    assert run("grants", "add", "--user", "guard", "--camera", "nope")[0] == 2
    assert (
        run(
            "grants",
            "add",
            "--user",
            "guard",
            "--camera",
            "lobby-1",
            "--from",
            "2026-11-20T09:00:00Z",
            "--to",
            "2026-11-20T08:00:00Z",
        )[0]
        == 2
    )
    code, out = run("tokens", "create", "--user", "guard", "--expires", "2030-01-01T00:00:00Z")
    token = out.strip().splitlines()[-1]
    assert code == 0 and token.startswith("cvt_") and " " not in token
    code, out = run("tokens", "list")
    assert token not in out
    assert run("grants", "revoke", str(grant["id"]))[0] == 0
    assert run("grants", "revoke", str(grant["id"]))[0] == 2  # no active grant
    code, out = run("grants", "list", "--all", "--json")
    listed = {g["id"]: g for g in json.loads(out)}
    assert listed[grant["id"]]["revoked_at"] is not None


def test_serve_wiring_runs_as_the_api_role(env: Any, make_settings: Any, bucket: str) -> None:
    """``camvault serve``'s wiring (App → start_api): real uvicorn, health checks of its
    own, and the footage reads going through the unprivileged role."""
    from camvault.api.server import start_api
    from camvault.app import App

    with App.open(make_settings()) as app:
        server, stop = start_api(app, host="127.0.0.1", port=0)
        try:
            health = httpx.get(server.url + "/healthz")
            cams = httpx.get(server.url + "/api/cameras", headers=bearer(env["tokens"]["viewer"]))
        finally:
            stop()
    assert health.status_code == 200, health.text
    assert [c["id"] for c in cams.json()] == ["lobby-1"]
    with App.open(make_settings(s3={"bucket": "no-such-bucket-xyz"})) as app:
        server, stop = start_api(app, host="127.0.0.1", port=0)
        try:
            sick = httpx.get(server.url + "/healthz")
        finally:
            stop()
    assert sick.status_code == 503 and sick.json()["checks"]["database"] == "ok"

"""Clip export end to end on real PostgreSQL + SeaweedFS + ffmpeg: the clip's decoded
frames, its object (AES256, SHA-256), the row, the audit trail, and the refusals."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import av
import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from camvault.acl import Permission
from camvault.embedded import SeaweedFS
from camvault.errors import StorageUnavailable
from camvault.export import media, streamplan
from tests.integration.access_env import (
    T0,
    add_cameras,
    add_recordings,
    bearer,
    exporter_headers,
    service_access,
)
from tests.integration.export_env import FRAME, GOP, ClipApi, clip_api, frame_times, upload_footage
from tests.media import make_h264

CAM = "dock"
SEC = timedelta(seconds=1)
# three 20 s recordings: 0-20, 20-40, then a gap, 50-70
STARTS = [T0, T0 + 20 * SEC, T0 + 50 * SEC]


# ffmpeg reading the presigned URLs itself, and fed by parallel ranged GETs (export.feed)
FEEDS = pytest.mark.parametrize(
    "world",
    [{}, {"export_fetch_parallel": 2, "export_fetch_part_mb": 1, "export_fetch_ahead": 2}],
    ids=["http", "fed"],
    indirect=True,
)


@pytest.fixture
def world(
    db_url: str,
    bucket: str,
    seaweed: SeaweedFS,
    s3: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[dict[str, Any]]:
    add_cameras(db_url, CAM)
    recs = upload_footage(s3, bucket, db_url, CAM, STARTS, 20, tmp_path)
    tokens = {}
    with service_access(db_url) as acc:
        for name in ("exporter", "viewer", "stranger", "late"):
            acc.add_user(name)
            tokens[name] = bearer(acc.create_token(name)[0])
        acc.add_grant(camera_id=CAM, user="exporter", permission=Permission.EXPORT)
        acc.add_grant(camera_id=CAM, user="viewer", permission=Permission.VIEW)
        # export from 5.5 s on: the keyframe at 5 s is outside it
        acc.add_grant(
            camera_id=CAM,
            user="late",
            permission=Permission.EXPORT,
            window_start=T0 + 5.5 * SEC,
            window_end=T0 + 30 * SEC,
        )
    with clip_api(
        db_url,
        seaweed=seaweed,
        bucket=bucket,
        tmp=tmp_path,
        api={"max_export_minutes": 10, **getattr(request, "param", {})},
    ) as api:
        yield {"api": api, "recs": recs, "tokens": tokens, "s3": s3, "bucket": bucket}


def wait_done(api: ClipApi, token: dict[str, str], export_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = api.client.get(f"/api/exports/{export_id}", headers=token)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["state"] in ("done", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"export {export_id} did not finish")


def rows(db_url: str, sql: str) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(sql).fetchall()


@FEEDS
def test_export_across_three_recordings_and_a_gap(
    world: dict[str, Any], db_url: str, tmp_path: Path
) -> None:
    api, tok = world["api"], world["tokens"]["exporter"]
    start, end = T0 + 5.5 * SEC, T0 + 65 * SEC
    r = api.client.post(
        "/api/exports",
        headers=tok,
        json={"camera_id": CAM, "start": start.isoformat(), "end": end.isoformat()},
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] == "queued" and job["recording_ids"] == [x.id for x in world["recs"]]
    done = wait_done(api, tok, job["id"])
    assert done["state"] == "done", done
    assert done["progress"] == 100
    # the keyframe at 5 s is inside the exporter's (unwindowed) grant: cut before start
    assert done["cut"] == "keyframe_at_or_before"
    actual_start = T0 + 5 * SEC
    assert done["actual_start"].replace("Z", "+00:00") == actual_start.isoformat()
    assert done["gaps"] == [
        {
            "start": (T0 + 40 * SEC).isoformat().replace("+00:00", "Z"),
            "end": (T0 + 50 * SEC).isoformat().replace("+00:00", "Z"),
        }
    ]

    d = api.client.post(f"/api/exports/{job['id']}/download", headers=tok)
    assert d.status_code == 200, d.text
    data = httpx.get(d.json()["url"]).content
    assert hashlib.sha256(data).hexdigest() == done["sha256"] == d.json()["sha256"]
    assert len(data) == done["size_bytes"]

    # decoded frames: every 0.1 s from the keyframe at 5 s to 65 s, nothing in the gap
    got = frame_times(data, actual_start, tmp_path)
    want = [
        T0 + i * FRAME
        for i in range(50, 650)
        if not (T0 + 40 * SEC <= T0 + i * FRAME < T0 + 50 * SEC)
    ]
    assert got == want
    assert start - GOP <= got[0] <= start
    # fragmented MP4, moov first (plays while downloading), as the job and object say
    assert done["mp4_layout"] == "fragmented"
    assert data[4:8] == b"ftyp" and data.find(b"moov") < data.find(b"moof") < data.find(b"mdat")
    assert b"mvex" in data[: data.find(b"moof")]
    assert data.rfind(b"mfra") > data.rfind(b"moof")  # the random-access index, at the end
    with av.open(str(tmp_path / "decoded.mp4")) as c:
        meta = json.loads(c.metadata["comment"])
    assert meta["mp4_layout"] == "fragmented"
    assert meta["gaps"] == [
        {"start": (T0 + 40 * SEC).isoformat(), "end": (T0 + 50 * SEC).isoformat()}
    ]

    row = rows(db_url, "SELECT * FROM exports")[0]
    assert row["state"] == "done" and row["requester_name"] == "exporter"
    head = world["s3"].head_object(Bucket=world["bucket"], Key=row["s3_key"])
    assert head["ServerSideEncryption"] == "AES256"
    assert head["Metadata"]["camvault-mp4-layout"] == "fragmented"
    assert head["ETag"].strip('"').endswith("-1")  # one multipart upload, completed
    assert world["s3"].list_multipart_uploads(Bucket=world["bucket"]).get("Uploads", []) == []
    assert row["s3_key"].startswith(f"exports/{CAM}/{job['id']}_")
    actions = [
        (a["user_name"], a["action"]) for a in rows(db_url, "SELECT * FROM audit_log ORDER BY id")
    ]
    assert actions == [
        ("exporter", "export.request"),
        ("exporter", "export.complete"),
        ("exporter", "export.download"),
    ]
    # the list shows it to its requester, not to others
    assert [e["id"] for e in api.client.get("/api/exports", headers=tok).json()] == [job["id"]]
    assert api.client.get("/api/exports", headers=world["tokens"]["viewer"]).json() == []
    other = api.client.get(f"/api/exports/{job['id']}", headers=world["tokens"]["viewer"])
    assert other.status_code == 404


def test_windowed_export_starts_after_the_window_start(
    world: dict[str, Any], tmp_path: Path
) -> None:
    api, tok = world["api"], world["tokens"]["late"]
    start, end = T0 + 5.5 * SEC, T0 + 25 * SEC
    r = api.client.post(
        "/api/exports",
        headers=tok,
        json={"camera_id": CAM, "start": start.isoformat(), "end": end.isoformat()},
    )
    assert r.status_code == 202, r.text
    done = wait_done(api, tok, r.json()["id"])
    assert done["state"] == "done" and done["cut"] == "keyframe_at_or_after", done
    d = api.client.post(f"/api/exports/{done['id']}/download", headers=tok).json()
    got = frame_times(httpx.get(d["url"]).content, T0 + 6 * SEC, tmp_path)
    assert got[0] == T0 + 6 * SEC and got[-1] == end - FRAME
    assert all(start <= t < end for t in got)
    # beyond the window: refused
    r = api.client.post(
        "/api/exports",
        headers=tok,
        json={"camera_id": CAM, "start": start.isoformat(), "end": (T0 + 31 * SEC).isoformat()},
    )
    assert r.status_code == 403 and r.json()["field"] == "start"


def test_refusals(world: dict[str, Any], db_url: str, bucket: str) -> None:
    api, t = world["api"], world["tokens"]
    body = {"camera_id": CAM, "start": T0.isoformat(), "end": (T0 + 30 * SEC).isoformat()}
    assert api.client.post("/api/exports", headers=t["viewer"], json=body).status_code == 403
    assert api.client.post("/api/exports", headers=t["stranger"], json=body).status_code == 404
    long = {**body, "end": (T0 + timedelta(minutes=11)).isoformat()}
    r = api.client.post("/api/exports", headers=t["exporter"], json=long)
    assert r.status_code == 422 and r.json()["field"] == "end", r.text
    naive = {**body, "start": "2026-11-20T08:00:00"}
    r = api.client.post("/api/exports", headers=t["exporter"], json=naive)
    assert r.status_code == 422 and r.json()["field"] == "start", r.text
    # archived footage in the range → 409 naming it
    (cold,) = add_recordings(
        db_url, CAM, 1, start=T0 + 2 * timedelta(hours=1), bucket=bucket, storage_class="GLACIER"
    )
    cold_body = {
        "camera_id": CAM,
        "start": cold.start.isoformat(),
        "end": (cold.start + 30 * SEC).isoformat(),
    }
    r = api.client.post("/api/exports", headers=t["exporter"], json=cold_body)
    assert r.status_code == 409, r.text
    assert [x["id"] for x in r.json()["recordings"]] == [cold.id]
    assert rows(db_url, "SELECT count(*) AS n FROM exports")[0]["n"] == 0
    # a not-yet-done export cannot be downloaded; nobody else's can be seen
    r = api.client.post("/api/exports/999/download", headers=t["exporter"])
    assert r.status_code == 404


@FEEDS
def test_streamed_clip_matches_the_export(
    world: dict[str, Any], db_url: str, tmp_path: Path
) -> None:
    api, t = world["api"], world["tokens"]
    start, end = T0 + 5.5 * SEC, T0 + 65 * SEC
    q = {"start": start.isoformat(), "end": end.isoformat()}
    r = api.client.get(f"/api/cameras/{CAM}/clip.mp4", params=q, headers=t["exporter"])
    assert r.status_code == 200, r.text
    assert r.headers["X-Camvault-Cut"] == "keyframe_at_or_before"
    assert json.loads(r.headers["X-Camvault-Gaps"]) == [
        {"start": (T0 + 40 * SEC).isoformat(), "end": (T0 + 50 * SEC).isoformat()}
    ]
    assert r.headers["X-Camvault-Assembly"] == "splice"  # faststart H.264, no audio
    got = frame_times(r.content, T0 + 5 * SEC, tmp_path)
    want = [
        T0 + i * FRAME
        for i in range(50, 650)
        if not (T0 + 40 * SEC <= T0 + i * FRAME < T0 + 50 * SEC)
    ]
    assert got == want
    # the windowed exporter gets exactly their window's part, from the keyframe after it
    q2 = {"start": start.isoformat(), "end": (T0 + 25 * SEC).isoformat()}
    r = api.client.get(f"/api/cameras/{CAM}/clip.mp4", params=q2, headers=t["late"])
    assert r.status_code == 200, r.text
    assert r.headers["X-Camvault-Assembly"] == "splice"
    got = frame_times(r.content, T0 + 6 * SEC, tmp_path)
    assert got[0] == T0 + 6 * SEC and all(start <= x < T0 + 25 * SEC for x in got)
    for who, status in (("viewer", 403), ("stranger", 404)):
        r = api.client.get(f"/api/cameras/{CAM}/clip.mp4", params=q, headers=t[who])
        assert r.status_code == status, (who, r.text)
    actions = [a["action"] for a in rows(db_url, "SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["export.stream", "export.stream"]


def test_streamed_clip_is_spliced_without_ffmpeg(
    world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faststart sources: the clip is assembled from their samples (no ffmpeg process at
    all), and its frames — pictures and times — are the ones ffmpeg's route gives."""
    api, t = world["api"], world["tokens"]
    q = {"start": (T0 + 5.5 * SEC).isoformat(), "end": (T0 + 65 * SEC).isoformat()}
    spawned: list[object] = []

    async def no_ffmpeg(*args: object, **kw: object) -> None:
        spawned.append(args)
        raise AssertionError("ffmpeg started")

    with monkeypatch.context() as m:
        m.setattr(media.asyncio, "create_subprocess_exec", no_ffmpeg)
        spliced = api.client.get(f"/api/cameras/{CAM}/clip.mp4", params=q, headers=t["exporter"])
    assert spliced.status_code == 200, spliced.text
    assert spliced.headers["X-Camvault-Assembly"] == "splice" and spawned == []
    monkeypatch.setattr(streamplan, "prepare", lambda *a, **kw: None)
    cut = api.client.get(f"/api/cameras/{CAM}/clip.mp4", params=q, headers=t["exporter"])
    assert cut.headers["X-Camvault-Assembly"] == "ffmpeg"
    got, want = decoded(spliced.content, tmp_path), decoded(cut.content, tmp_path)
    assert got == want and len(got) == 500


def test_a_failed_get_mid_splice_breaks_the_response(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last recording's samples cannot be read (after retries): the response, begun
    with the first two, ends without its last chunk — never as a clip that looks whole."""
    api, t, recs = world["api"], world["tokens"], world["recs"]
    real = api.store.read_range

    def failing(key: str, offset: int, into: memoryview) -> tuple[int, int]:
        if key == recs[-1].key and offset > 0:  # its head (moov) reads fine: the samples not
            raise StorageUnavailable(f"S3 GET {key} failed: injected")
        return real(key, offset, into)

    monkeypatch.setattr(api.store, "read_range", failing)
    q = {"start": (T0 + 5.5 * SEC).isoformat(), "end": (T0 + 65 * SEC).isoformat()}
    got = 0
    with api.client.stream(
        "GET", f"/api/cameras/{CAM}/clip.mp4", params=q, headers=t["exporter"]
    ) as r:
        assert r.status_code == 200 and r.headers["X-Camvault-Assembly"] == "splice"
        with pytest.raises(httpx.RemoteProtocolError):
            for data in r.iter_bytes():
                got += len(data)
    assert got > 0


def decoded(data: bytes, tmp: Path) -> list[tuple[float, str]]:
    """(pts in seconds, checksum of the picture's rows) of every decoded frame."""
    path = tmp / "decoded.mp4"
    path.write_bytes(data)
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            h = hashlib.md5()
            for p in f.planes:
                rows = bytes(p)
                for y in range(p.height):
                    h.update(rows[y * p.line_size : y * p.line_size + p.width])
            out.append((round(float(f.pts * f.time_base), 4), h.hexdigest()))
    return out


def test_exports_rls_requester_and_admins(world: dict[str, Any], db_url: str) -> None:
    """Row-level security on exports: the requester and admins see a job; nobody can
    create one in another user's name, even with SQL through the API role."""
    api, t = world["api"], world["tokens"]
    body = {"camera_id": CAM, "start": T0.isoformat(), "end": (T0 + 10 * SEC).isoformat()}
    job = api.client.post("/api/exports", headers=t["exporter"], json=body).json()
    with service_access(db_url) as acc:
        acc.add_user("boss", is_admin=True)
        boss = bearer(acc.create_token("boss")[0])
    assert api.client.get(f"/api/exports/{job['id']}", headers=boss).status_code == 200
    assert [e["id"] for e in api.client.get("/api/exports", headers=boss).json()] == [job["id"]]
    d = api.client.post(f"/api/exports/{job['id']}/download", headers=t["viewer"])
    assert d.status_code == 404
    with psycopg.connect(db_url) as conn, conn.transaction():
        viewer_id = conn.execute("SELECT id FROM users WHERE name = 'viewer'").fetchone()
        assert viewer_id is not None
        conn.execute("SET LOCAL ROLE camvault_api")
        conn.execute("SELECT set_config('camvault.user_id', %s, true)", (str(viewer_id[0]),))
        assert conn.execute("SELECT count(*) FROM exports").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO exports (requested_by, camera_id, range_start, range_end,"
                " allowed_start, recording_ids) VALUES (%s, %s, %s, %s, %s, '{}')",
                (viewer_id[0] + 1000, CAM, T0, T0 + SEC, T0),
            )


def test_audio_only_when_the_cut_cannot_reach_outside(
    world: dict[str, Any], db_url: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """An audio packet just before a concat inpoint can slip through: a window's edge
    (media route, keyframe-after cut) gets video only; a keyframe-before export keeps it."""
    add_cameras(db_url, "aud")
    src = make_h264(tmp_path / "aud.mp4", seconds=10, fps=10, gop=10, audio=True)
    (rec,) = add_recordings(db_url, "aud", 1, start=T0, length=10 * SEC, bucket=bucket)
    s3.put_object(Bucket=bucket, Key=rec.key, Body=src.read_bytes(), ServerSideEncryption="AES256")
    with service_access(db_url) as acc:
        acc.add_grant(camera_id="aud", user="exporter", permission=Permission.EXPORT)
        acc.add_grant(
            camera_id="aud", user="late", window_start=T0 + 2.5 * SEC, window_end=T0 + 6 * SEC
        )
    api, t = world["api"], world["tokens"]

    def streams(data: bytes) -> set[str]:
        (tmp_path / "s.mp4").write_bytes(data)
        with av.open(str(tmp_path / "s.mp4")) as c:
            return {s.type for s in c.streams}

    media = api.client.get(f"/api/recordings/{rec.id}/media", headers=t["late"])
    assert media.status_code == 200, media.text
    assert streams(media.content) == {"video"}
    assert media.headers["X-Camvault-Assembly"] == "splice"  # strict: the audio is dropped
    q = {"start": (T0 + 2.5 * SEC).isoformat(), "end": (T0 + 6 * SEC).isoformat()}
    clip = api.client.get("/api/cameras/aud/clip.mp4", params=q, headers=t["exporter"])
    assert clip.headers["X-Camvault-Cut"] == "keyframe_at_or_before"
    assert clip.headers["X-Camvault-Assembly"] == "splice"  # the AAC track copied too
    assert streams(clip.content) == {"video", "audio"}


def test_jobs_are_shared_between_workers_and_run_concurrently(
    db_url: str, bucket: str, seaweed: SeaweedFS, s3: Any, tmp_path: Path
) -> None:
    """Two claims take two different jobs (SKIP LOCKED), both run at once, and the API
    answers while they do."""
    import threading

    add_cameras(db_url, CAM)
    upload_footage(s3, bucket, db_url, CAM, STARTS, 20, tmp_path)
    tok = exporter_headers(db_url, CAM)
    with clip_api(
        db_url,
        seaweed=seaweed,
        bucket=bucket,
        tmp=tmp_path,
        workers=0,  # this test is the workers
    ) as api:
        ids = []
        for i in range(3):
            body = {
                "camera_id": CAM,
                "start": (T0 + i * SEC).isoformat(),
                "end": (T0 + 30 * SEC).isoformat(),
            }
            ids.append(api.client.post("/api/exports", headers=tok, json=body).json()["id"])
        a, b = api.runner.claim(), api.runner.claim()
        assert a is not None and b is not None and a.id != b.id
        states = {r["id"]: r["state"] for r in rows(db_url, "SELECT id, state FROM exports")}
        assert sorted(states.values()) == ["queued", "running", "running"]
        threads = [threading.Thread(target=api.runner.run, args=(j,)) for j in (a, b)]
        for th in threads:
            th.start()
        assert api.client.get("/api/cameras", headers=tok).status_code == 200
        for th in threads:
            th.join()
        assert api.runner.run_next() and not api.runner.run_next()
        done = rows(db_url, "SELECT id, state, worker FROM exports ORDER BY id")
        assert [r["state"] for r in done] == ["done"] * 3
        assert [r["id"] for r in done] == ids

"""The timeline API, the HLS playlist and the remuxing media route on real PostgreSQL and
SeaweedFS, under row-level security; and the page's assets served locally (no CDN)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import av
import psycopg
import pytest

from camvault.embedded import SeaweedFS
from tests.integration.access_env import (
    SEGMENT,
    T0,
    add_cameras,
    add_recordings,
    api_client,
    bearer,
    service_access,
)
from tests.media import _run, make_h264, make_h265


def _iso(t: Any) -> str:
    return t.isoformat().replace("+00:00", "Z")


@pytest.fixture
def env(db_url: str, bucket: str, s3: Any, tmp_path: Path) -> Any:
    add_cameras(db_url, "lobby-1", "vault-9")
    first = add_recordings(db_url, "lobby-1", 3, bucket=bucket)  # 08:00-08:15
    second = add_recordings(db_url, "lobby-1", 2, start=T0 + 25 * SEGMENT / 5, bucket=bucket)
    # 08:25-08:35, then two archived ones 08:35-08:45: a new span (other state), no gap
    cold = add_recordings(
        db_url, "lobby-1", 2, start=T0 + 35 * SEGMENT / 5, bucket=bucket, storage_class="GLACIER"
    )
    add_recordings(db_url, "vault-9", 1, bucket=bucket)
    with psycopg.connect(db_url) as conn:  # the later archived one is being restored
        conn.execute(
            "INSERT INTO restores (recording_id, recording_start, camera_id, s3_bucket, s3_key,"
            " status, tier, days) VALUES (%s, %s, 'lobby-1', %s, %s, 'in_progress', 'Bulk', 1)",
            (cold[1].id, cold[1].start, bucket, cold[1].key),
        )
    clip = make_h264(tmp_path / "clip.mp4", seconds=2.0)
    s3.put_object(Bucket=bucket, Key=first[0].key, Body=clip.read_bytes())
    with service_access(db_url) as acc:
        acc.add_user("guard")
        acc.add_user("temp")
        acc.add_user("nobody")
        acc.add_grant(camera_id="lobby-1", user="guard")
        # a windowed grant covering 08:25-08:35 only
        acc.add_grant(
            camera_id="lobby-1",
            user="temp",
            window_start=T0 + timedelta(minutes=25),
            window_end=T0 + timedelta(minutes=35),
        )
        tokens = {n: acc.create_token(n)[0] for n in ("guard", "temp", "nobody")}
    return {"first": first, "second": second, "cold": cold, "tokens": tokens, "bucket": bucket}


@pytest.fixture
def client(env: Any, db_url: str, seaweed: SeaweedFS) -> Any:
    with api_client(
        db_url,
        s3_endpoint=seaweed.endpoint_url,
        bucket=env["bucket"],
        credentials=(seaweed.access_key, seaweed.secret_key),
        api={"max_range_days": 31},
    ) as (c, _):
        yield c


RANGE = {"start": _iso(T0 - timedelta(hours=1)), "end": _iso(T0 + timedelta(hours=1))}


def test_timeline_merges_abutting_recordings_and_reports_gaps_and_states(
    env: Any, client: Any
) -> None:
    resp = client.get(
        "/api/cameras/lobby-1/timeline", params=RANGE, headers=bearer(env["tokens"]["guard"])
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    spans = [(s["start"], s["end"], s["state"], s["recordings"]) for s in body["spans"]]
    m = lambda n: _iso(T0 + timedelta(minutes=n))  # noqa: E731
    assert spans == [
        (m(0), m(15), "STANDARD", 3),
        (m(25), m(35), "STANDARD", 2),
        (m(35), m(40), "archived", 1),
        (m(40), m(45), "restoring", 1),
    ]
    assert body["gaps"] == [{"start": m(15), "end": m(25), "seconds": 600.0}]
    assert body["spans"][0]["codecs"] == ["h264"]
    assert body["can_restore"] is False  # view only


def test_timeline_is_row_level_secured(env: Any, client: Any) -> None:
    windowed = client.get(
        "/api/cameras/lobby-1/timeline", params=RANGE, headers=bearer(env["tokens"]["temp"])
    )
    assert windowed.status_code == 200
    assert [(s["start"], s["end"]) for s in windowed.json()["spans"]] == [
        (_iso(T0 + timedelta(minutes=25)), _iso(T0 + timedelta(minutes=35)))
    ]
    assert windowed.json()["gaps"] == []
    for cam in ("vault-9", "no-such-cam"):
        hidden = client.get(
            f"/api/cameras/{cam}/timeline", params=RANGE, headers=bearer(env["tokens"]["guard"])
        )
        assert hidden.status_code == 404
    assert (
        client.get(
            "/api/cameras/lobby-1/timeline", params=RANGE, headers=bearer(env["tokens"]["nobody"])
        ).status_code
        == 404
    )
    too_long = client.get(
        "/api/cameras/lobby-1/timeline",
        params={"start": _iso(T0), "end": _iso(T0 + timedelta(days=32))},
        headers=bearer(env["tokens"]["guard"]),
    )
    assert too_long.status_code == 400 and too_long.json()["field"] == "end"


def test_playlist_lists_playable_recordings_with_wall_clock_and_is_audited(
    env: Any, client: Any, db_url: str
) -> None:
    resp = client.get(
        "/api/cameras/lobby-1/playlist.m3u8", params=RANGE, headers=bearer(env["tokens"]["guard"])
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    text = resp.text
    playable = env["first"] + env["second"]  # the archived ones are left out
    assert re.findall(r"^/api/recordings/(\d+)/media\.ts$", text, re.M) == [
        str(r.id) for r in playable
    ]
    assert re.findall(r"^#EXT-X-PROGRAM-DATE-TIME:(.+)$", text, re.M) == [
        r.start.strftime("%Y-%m-%dT%H:%M:%S.000Z") for r in playable
    ]
    assert text.count("#EXT-X-DISCONTINUITY") == len(playable) - 1
    assert "#EXTINF:300.000," in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    with psycopg.connect(db_url) as conn:
        [(action, rec_id, detail)] = conn.execute(
            "SELECT action, recording_id, detail FROM audit_log"
        ).fetchall()
    assert action == "playback" and rec_id == playable[0].id
    assert detail["playlist"] is True and detail["recordings"] == 5
    assert detail["skipped_archived"] == 2


def test_media_route_remuxes_to_mpeg_ts_and_refuses_archived(
    env: Any, client: Any, tmp_path: Path
) -> None:
    rec = env["first"][0]
    resp = client.get(f"/api/recordings/{rec.id}/media.ts", headers=bearer(env["tokens"]["guard"]))
    assert resp.status_code == 200 and resp.headers["content-type"] == "video/mp2t"
    assert resp.content[:1] == b"\x47" and len(resp.content) % 188 == 0
    out = tmp_path / "got.ts"
    out.write_bytes(resp.content)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = sum(1 for _ in container.decode(stream))
    assert frames == 30  # 2 s at 15 fps: stream copy keeps every frame
    cold = env["cold"][0]
    refused = client.get(
        f"/api/recordings/{cold.id}/media.ts", headers=bearer(env["tokens"]["guard"])
    )
    assert refused.status_code == 409 and refused.json()["field"] == "id"
    hidden = client.get(
        f"/api/recordings/{rec.id}/media.ts", headers=bearer(env["tokens"]["nobody"])
    )
    assert hidden.status_code == 404


def test_page_and_docs_load_nothing_from_outside(client: Any) -> None:
    page = client.get("/")
    assert page.status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200
    for html in (page.text, docs.text):
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html)
        urls += re.findall(r"""url:\s*['"]([^'"]+)""", html)
        assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "cdn" not in docs.text.lower()
    for path in re.findall(r"""(?:src|href)=["'](/(?:vendor|ui)/[^"']+)""", page.text + docs.text):
        asset = client.get(path)
        assert asset.status_code == 200 and len(asset.content) > 500, path
    assert client.get("/redoc").status_code == 404
    assert client.get("/vendor/../../etc/passwd").status_code == 404


@pytest.mark.parametrize("kind", ["fragmented.mp4", "mkv", "hevc.mp4"])
def test_media_route_plays_every_container_we_store(
    env: Any, client: Any, s3: Any, tmp_path: Path, kind: str
) -> None:
    """The recorder's fragmented MP4, ingested Matroska and H.265 all remux by stream copy."""
    rec = env["first"][1]
    if kind == "fragmented.mp4":
        plain = make_h264(tmp_path / "plain.mp4", seconds=2.0)
        src = tmp_path / "frag.mp4"
        _run(["-i", str(plain), "-c", "copy", "-movflags", "frag_keyframe+empty_moov", str(src)])
    elif kind == "mkv":
        src = make_h264(tmp_path / "clip.mkv", seconds=2.0)
    else:
        src = make_h265(tmp_path / "clip.mp4", seconds=2.0)
    s3.put_object(Bucket=env["bucket"], Key=rec.key, Body=src.read_bytes())
    resp = client.get(f"/api/recordings/{rec.id}/media.ts", headers=bearer(env["tokens"]["guard"]))
    assert resp.status_code == 200
    out = tmp_path / "got.ts"
    out.write_bytes(resp.content)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == ("hevc" if kind.startswith("hevc") else "h264")
        assert sum(1 for _ in container.decode(stream)) == 30

"""Export jobs spliced from the recordings' samples (``export.jobsplice``) on real
PostgreSQL + SeaweedFS: no ffmpeg cuts the clip, the row says ``assembly: splice``, the
object is whole (AES256, its SHA-256 the row's), and the clip — frames, title, comment,
creation time — is the one ffmpeg's route makes of the same job."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import av
import psycopg
import pytest

from camvault.embedded import SeaweedFS
from camvault.errors import StorageUnavailable
from camvault.export import jobs
from tests.integration.access_env import T0, add_cameras, exporter_headers
from tests.integration.export_env import ClipApi, clip_api, upload_footage

CAM = "yard"
SEC = timedelta(seconds=1)
# three 20 s recordings: 0-20, 20-40, then a gap, 50-70
STARTS = [T0, T0 + 20 * SEC, T0 + 50 * SEC]


@pytest.fixture(params=["faststart", "fragmented"])
def world(
    db_url: str, bucket: str, seaweed: SeaweedFS, s3: Any, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[ClipApi, dict[str, str], str]]:  # fmt: skip
    with _world(db_url, bucket, seaweed, s3, tmp_path, request.param) as w:
        yield w


@contextmanager
def _world(
    db_url: str, bucket: str, seaweed: SeaweedFS, s3: Any, tmp_path: Path, layout: str,
    audio: bool = False,
) -> Iterator[tuple[ClipApi, dict[str, str], str]]:  # fmt: skip
    add_cameras(db_url, CAM)
    fragmented = layout == "fragmented"
    upload_footage(
        s3, bucket, db_url, CAM, STARTS, 20, tmp_path, fragmented=fragmented, audio=audio
    )
    tok = exporter_headers(db_url, CAM)
    with clip_api(
        db_url,
        seaweed=seaweed,
        bucket=bucket,
        tmp=tmp_path,
        workers=0,  # the test runs the jobs, to see which processes they start
    ) as api:
        yield api, tok, layout


def _export(api: ClipApi, tok: dict[str, str]) -> dict[str, Any]:
    """Request a job (5.5 s - 65 s, across the gap) and run it here; its row."""
    body = {
        "camera_id": CAM,
        "start": (T0 + 5.5 * SEC).isoformat(),
        "end": (T0 + 65 * SEC).isoformat(),
    }
    r = api.client.post("/api/exports", headers=tok, json=body)
    assert r.status_code == 202, r.text
    assert api.runner.run_next()
    done: dict[str, Any] = api.client.get(f"/api/exports/{r.json()['id']}", headers=tok).json()
    return done


def _clip(s3: Any, bucket: str, db_url: str, done: dict[str, Any], tmp: Path) -> Path:
    """The job's object, checked whole (AES256, SHA-256 and size the row's), on disk."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT s3_key, sha256 FROM exports WHERE id = %s", (done["id"],))
        key, sha = row.fetchone() or (None, None)
    assert key and sha == done["sha256"]
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["Metadata"]["camvault-mp4-layout"] == "fragmented"
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(data).hexdigest() == sha and len(data) == done["size_bytes"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    path = tmp / f"{done['id']}.mp4"
    path.write_bytes(data)
    return path


def _read(path: Path) -> tuple[dict[str, str], list[tuple[float, bool]]]:
    """(container tags, each video packet's (pts in seconds, keyframe))."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        tags = {k: c.metadata[k] for k in ("title", "comment", "creation_time")}
        packets = [(float(p.pts * vs.time_base), p.is_keyframe) for p in c.demux(vs) if p.size]
    return tags, packets


def test_job_is_spliced_without_ffmpeg_and_matches_ffmpegs_clip(
    world: tuple[ClipApi, dict[str, str], str], s3: Any, bucket: str, db_url: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    api, tok, _ = world
    started: list[list[str]] = []
    real_popen = subprocess.Popen

    def popen(args: Any, *a: Any, **kw: Any) -> Any:
        started.append([str(x) for x in args])
        return real_popen(args, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(subprocess, "Popen", popen)
        m.setattr(jobs, "render_stream", _no_ffmpeg)
        spliced = _export(api, tok)
    assert spliced["state"] == "done" and spliced["progress"] == 100, spliced
    assert spliced["assembly"] == "splice"
    assert spliced["cut"] == "keyframe_at_or_before"
    # no ffmpeg at all: not to cut, nor to probe (a fragmented first recording's
    # keyframes come from its mfra: export.randomaccess)
    assert started == [], started
    got = _clip(s3, bucket, db_url, spliced, tmp_path)

    # the same job by ffmpeg (the splice declined): the same frames and tags
    monkeypatch.setattr(jobs, "prepare_job", lambda *a, **kw: None)
    cut = _export(api, tok)
    assert cut["state"] == "done" and cut["assembly"] == "ffmpeg", cut
    want = _clip(s3, bucket, db_url, cut, tmp_path)
    (got_tags, got_packets), (want_tags, want_packets) = _read(got), _read(want)
    assert got_packets == want_packets and len(got_packets) == 500
    for tags, done in ((got_tags, spliced), (want_tags, cut)):
        comment = json.loads(tags["comment"])
        assert comment["camvault_export"] == done["id"]
        assert tags["title"] == f"{CAM} {(T0 + 5 * SEC).isoformat()}"
        assert tags["creation_time"] == (T0 + 5 * SEC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        assert comment["gaps"] == [
            {"start": (T0 + 40 * SEC).isoformat(), "end": (T0 + 50 * SEC).isoformat()}
        ]
    assert {**json.loads(got_tags["comment"]), "camvault_export": 0} == {
        **json.loads(want_tags["comment"]),
        "camvault_export": 0,
    }


@pytest.mark.parametrize("layout", ["faststart", "fragmented"])
def test_a_job_keeping_aac_audio_is_spliced_with_it(
    layout: str, db_url: str, bucket: str, seaweed: SeaweedFS, s3: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Footage with AAC audio, a keyframe-before cut (the job keeps the audio): spliced
    all the same, no ffmpeg; the clip's audio is ffmpeg's route's, packet for packet
    (bytes and spacing), but for a packet or two at each recording's edge."""
    with _world(db_url, bucket, seaweed, s3, tmp_path, layout, audio=True) as (api, tok, _):
        with monkeypatch.context() as m:
            m.setattr(jobs, "render_stream", _no_ffmpeg)
            spliced = _export(api, tok)
        assert (spliced["state"], spliced["assembly"]) == ("done", "splice"), spliced
        got = _audio(_clip(s3, bucket, db_url, spliced, tmp_path))
        monkeypatch.setattr(jobs, "prepare_job", lambda *a, **kw: None)
        cut = _export(api, tok)
        assert (cut["state"], cut["assembly"]) == ("done", "ffmpeg"), cut
        want = _audio(_clip(s3, bucket, db_url, cut, tmp_path))
    # 5.5 s to 65 s across a 10 s gap: ~50 s of 48 kHz AAC (1024 samples a packet)
    assert len(got) > 2000 and abs(len(got) - len(want)) <= 6
    at, skipped, shifts = 0, 0, set()
    for t, payload in got:
        k = next(k for k in range(at, at + 3) if want[k][1] == payload)
        skipped += k - at
        shifts.add(round(want[k][0] - t, 3))
        at = k + 1
    assert skipped <= 6 and len(shifts) == 1


def _audio(path: Path) -> list[tuple[float, bytes]]:
    """Each audio packet's (dts in seconds, payload) of an AAC clip."""
    with av.open(str(path)) as c:
        (a,) = c.streams.audio
        assert a.codec_context.name == "aac"
        return [(float(p.dts * a.time_base), bytes(p)) for p in c.demux(a) if p.size]


def _no_ffmpeg(*args: object, **kw: object) -> None:
    raise AssertionError("ffmpeg cut the clip")


def test_a_failed_get_mid_splice_fails_the_job(
    world: tuple[ClipApi, dict[str, str], str], s3: Any, bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The last recording's samples cannot be read (after retries): the job fails with the
    GET's error, and nothing is left in the bucket — never a short clip marked done."""
    api, tok, _ = world
    real = api.store.read_range
    last = sorted(
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if CAM in o["Key"]
    )[-1]

    def failing(key: str, offset: int, into: memoryview) -> tuple[int, int]:
        if key == last and offset > 0:  # its head (moov) reads fine: the samples not
            raise StorageUnavailable(f"S3 GET {key} failed: injected")
        return real(key, offset, into)

    monkeypatch.setattr(api.store, "read_range", failing)
    failed = _export(api, tok)
    assert failed["state"] == "failed" and failed["assembly"] == "splice", failed
    assert "StorageUnavailable" in failed["error"] and "injected" in failed["error"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="exports/").get("Contents", [])
    assert listed == [] and s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

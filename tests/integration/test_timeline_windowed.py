"""Windowed grants on the timeline: the spans, the playlist and every media URL in it show
exactly the window — proved by decoding what the user can fetch (PyAV frame timestamps).

Footage (tests.integration.export_env): H.264, 10 fps, one keyframe per second, so a
recording's frame ``i`` is at ``start + i / 10 s`` and a window's part starts on the first
whole second at or after its start.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av
import psycopg

from camvault.acl import Permission
from camvault.embedded import SeaweedFS
from tests.integration.access_env import T0, add_cameras, bearer, service_access
from tests.integration.export_env import FRAME, clip_api, upload_footage

CAM = "yard-3"
SEC = timedelta(seconds=1)
SEG = 30  # seconds per recording: 08:00:00, :30, 08:01:00 (then a gap), 08:02:00
WIN = (T0 + 12.4 * SEC, T0 + 71.3 * SEC)  # part of rec 0, all of rec 1, part of rec 2
TWO = ((T0 + 3 * SEC, T0 + 7.5 * SEC), (T0 + 20 * SEC, T0 + 24 * SEC))  # both in rec 0


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _ceil_second(t: datetime) -> datetime:
    whole = t.replace(microsecond=0)
    return whole if whole == t else whole + SEC


def _decode(data: bytes, tmp: Path) -> tuple[list[float], bool]:
    """Frame presentation times (s) of an MPEG-TS, and whether the first is a keyframe."""
    path = tmp / "part.ts"
    path.write_bytes(data)
    with av.open(str(path)) as c:
        assert not c.streams.audio, "a window's edge is hard: no audio that could leak"
        vs = c.streams.video[0]
        frames = [f for f in c.decode(vs)]
        return [float(f.pts * f.time_base) for f in frames], bool(frames and frames[0].key_frame)


def _playlist(text: str) -> list[tuple[datetime, float, str]]:
    """(PROGRAM-DATE-TIME, EXTINF, URL) per entry."""
    found = re.findall(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)\n#EXTINF:([\d.]+),\n(\S+)", text)
    return [(datetime.fromisoformat(p.replace("Z", "+00:00")), float(d), u) for p, d, u in found]


def test_windowed_user_gets_exactly_the_window_decoded(
    db_url: str, bucket: str, seaweed: SeaweedFS, s3: Any, tmp_path: Path
) -> None:
    add_cameras(db_url, CAM)
    starts = [T0, T0 + SEG * SEC, T0 + 2 * SEG * SEC, T0 + 4 * SEG * SEC]
    recs = upload_footage(s3, bucket, db_url, CAM, starts, SEG, tmp_path)
    with service_access(db_url) as acc:
        tokens = {}
        for name in ("win", "two", "full"):
            acc.add_user(name)
            tokens[name] = bearer(acc.create_token(name)[0])
        acc.add_grant(camera_id=CAM, user="win", window_start=WIN[0], window_end=WIN[1])
        for a, b in TWO:
            acc.add_grant(camera_id=CAM, user="two", window_start=a, window_end=b)
        acc.add_grant(camera_id=CAM, user="full", permission=Permission.EXPORT)
    rng = {"start": _iso(T0 - 60 * SEC), "end": _iso(T0 + 10 * 60 * SEC)}
    with clip_api(
        db_url,
        seaweed=seaweed,
        bucket=bucket,
        tmp=tmp_path,
    ) as api:
        http = api.client
        # the timeline: one span, exactly the window; no gap; not allowed to export
        tl = http.get(f"/api/cameras/{CAM}/timeline", params=rng, headers=tokens["win"]).json()
        assert [(s["start"], s["end"]) for s in tl["spans"]] == [(_iso(WIN[0]), _iso(WIN[1]))]
        assert [s["recordings"] for s in tl["spans"]] == [3]
        assert tl["gaps"] == [] and tl["can_export"] is False
        two = http.get(f"/api/cameras/{CAM}/timeline", params=rng, headers=tokens["two"]).json()
        assert [(s["start"], s["end"]) for s in two["spans"]] == [
            (_iso(a), _iso(b)) for a, b in TWO
        ]
        assert [(g["start"], g["end"]) for g in two["gaps"]] == [(_iso(TWO[0][1]), _iso(TWO[1][0]))]
        # the unwindowed user still sees whole recordings and the real gap
        full = http.get(f"/api/cameras/{CAM}/timeline", params=rng, headers=tokens["full"]).json()
        assert [(s["start"], s["end"]) for s in full["spans"]] == [
            (_iso(T0), _iso(T0 + 3 * SEG * SEC)),
            (_iso(starts[3]), _iso(starts[3] + SEG * SEC)),
        ]
        assert full["can_export"] is True

        for user, windows in (("win", [WIN]), ("two", list(TWO))):
            pl = http.get(f"/api/cameras/{CAM}/playlist.m3u8", params=rng, headers=tokens[user])
            assert pl.status_code == 200, pl.text
            entries = _playlist(pl.text)
            # one entry per visible part of a recording, each with its own start (its first
            # keyframe: the footage has one per whole second) and duration
            want = []
            for a, b in windows:
                for r in recs:
                    s, e = max(a, r.start), min(b, r.end)
                    if s < e:
                        want.append((s, _ceil_second(s), e, r))
            assert [(p, d) for p, d, _ in entries] == [
                (first, round((e - first).total_seconds(), 3)) for _, first, e, _ in want
            ]
            decoded = 0
            for (_, _, url), (s, first, e, rec) in zip(entries, want, strict=True):
                assert url.startswith(f"/api/recordings/{rec.id}/media.ts")
                clipped = (s, e) != (rec.start, rec.end)
                assert ("?" in url) == clipped, url
                resp = http.get(url, headers=tokens[user])
                assert resp.status_code == 200, (url, resp.text)
                times, key_first = _decode(resp.content, tmp_path)
                assert key_first
                expect = []
                while first + len(expect) * FRAME < e:
                    expect.append(first + len(expect) * FRAME)
                # not one frame more than the window holds: count, spacing, and each instant
                assert len(times) == len(expect), (url, len(times), len(expect))
                wall = [first + timedelta(seconds=round(t - times[0], 4)) for t in times]
                assert wall == expect, url
                assert all(windows_hold(windows, w) for w in wall), url
                decoded += len(wall)
            assert decoded > 0
            # asking past the window through the URL's own parameters: clipped back to it
            _, _, url = entries[0]
            rec_id = int(url.split("/")[3])
            rec = next(r for r in recs if r.id == rec_id)
            wide = http.get(
                f"/api/recordings/{rec_id}/media.ts",
                params={"start": _iso(rec.start), "end": _iso(rec.end)},
                headers=tokens[user],
            )
            assert wide.status_code == 200
            times, _ = _decode(wide.content, tmp_path)
            first = datetime.fromisoformat(wide.headers["X-Camvault-Start"])
            assert first >= windows[0][0]
            assert _all_inside(windows, first, times)
            # the bare URL (no parameters) serves the visible part too, never the file
            bare = http.get(f"/api/recordings/{rec_id}/media.ts", headers=tokens[user])
            times, _ = _decode(bare.content, tmp_path)
            first = datetime.fromisoformat(bare.headers["X-Camvault-Start"])
            assert len(times) < SEG * 10
            assert _all_inside(windows, first, times)
        # a recording outside every window: 404, as if it did not exist
        out = http.get(f"/api/recordings/{recs[3].id}/media.ts", headers=tokens["win"])
        assert out.status_code == 404
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT detail->>'start', detail->>'end' FROM audit_log"
            " WHERE action = 'playback.media' AND user_name = 'win'"
        ).fetchall()
    assert rows and all(
        WIN[0] <= datetime.fromisoformat(a) and datetime.fromisoformat(b) <= WIN[1] for a, b in rows
    )


def _all_inside(
    windows: list[tuple[datetime, datetime]], first: datetime, times: list[float]
) -> bool:
    return bool(times) and all(
        windows_hold(windows, first + timedelta(seconds=t - times[0])) for t in times
    )


def windows_hold(windows: list[tuple[datetime, datetime]], t: datetime) -> bool:
    return any(a <= t < b for a, b in windows)


def test_clipped_media_of_a_missing_object_is_404(
    db_url: str, bucket: str, seaweed: SeaweedFS, s3: Any, tmp_path: Path
) -> None:
    add_cameras(db_url, CAM)
    (rec,) = upload_footage(s3, bucket, db_url, CAM, [T0], SEG, tmp_path)
    s3.delete_object(Bucket=bucket, Key=rec.key)
    with service_access(db_url) as acc:
        acc.add_user("win")
        tok = bearer(acc.create_token("win")[0])
        acc.add_grant(camera_id=CAM, user="win", window_start=WIN[0], window_end=WIN[1])
    with clip_api(
        db_url,
        seaweed=seaweed,
        bucket=bucket,
        tmp=tmp_path,
    ) as api:
        r = api.client.get(f"/api/recordings/{rec.id}/media.ts", headers=tok)
        assert r.status_code == 404, r.text
        assert r.json()["field"] == "recording_id" and "missing" in r.json()["detail"]
        # bad input is a 4xx naming the field
        bad = api.client.get(
            f"/api/recordings/{rec.id}/media.ts", params={"start": "yesterday"}, headers=tok
        )
        assert bad.status_code == 400 and bad.json()["field"] == "start"

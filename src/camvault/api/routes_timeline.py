"""The web page's footage API: a camera's timeline, an HLS playlist over a time range, and
each recording's media remuxed for the browser.

* ``GET /api/cameras/{id}/timeline`` — spans (abutting recordings merged, per storage
  state), gaps, and whether the caller may ask for Glacier restores.
* ``GET /api/cameras/{id}/playlist.m3u8`` — one HLS entry per playable recording, each
  after an ``EXT-X-DISCONTINUITY`` (every file has its own timestamps) and with its
  ``EXT-X-PROGRAM-DATE-TIME``, so the player knows the wall-clock time of every frame and
  plays across segment boundaries on its own. Fetching it is a playback start: audited.
* ``GET /api/recordings/{id}/media.ts`` — the recording as MPEG-TS, remuxed by ffmpeg
  with stream copy (no re-encode) from its presigned S3 URL: MP4, fragmented MP4 and MKV
  all become something every MSE player appends.
"""

from __future__ import annotations

import math
import pathlib
import subprocess
import tempfile
import urllib.error
import urllib.request
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import IO, Annotated
from urllib.parse import urlencode

import imageio_ffmpeg
from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from camvault.acl import Permission, Principal, applies_to
from camvault.api import params
from camvault.api.deps import Caller, CallerDep, RecordingId, VisibleEnd, VisibleStart
from camvault.api.params import ApiError
from camvault.api.playback import presign, unchanged
from camvault.api.routes_media import window
from camvault.catalog.access import AuditEntry
from camvault.catalog.timeline import PlaylistEntry, TimelineCatalog, gaps_between
from camvault.errors import InputError, InvalidMedia, StorageUnavailable
from camvault.export.clip import Source
from camvault.export.jobs import plan_sources
from camvault.export.media import ffmpeg_exe, probe_keyframes, stream_ts
from camvault.models import Recording

router = APIRouter(prefix="/api", tags=["timeline"])

Start = Annotated[str | None, Query(description="ISO 8601; default end - 24 h")]
End = Annotated[str | None, Query(description="ISO 8601; default now")]
MAX_PLAYLIST_ENTRIES = 2000  # a day of 1-minute segments, with room
_CHUNK = 64 * 1024


class SpanOut(BaseModel):
    """A stretch of gapless footage in one storage state, with how many recordings and which codecs
    it covers."""

    start: datetime
    end: datetime
    state: str
    recordings: int
    codecs: list[str]


class GapOut(BaseModel):
    """A stretch of the requested range with no visible footage."""

    start: datetime
    end: datetime
    seconds: float


class TimelineOut(BaseModel):
    """A camera's timeline over [start, end): visible spans, gaps, and what the caller may do
    (restore, export)."""

    camera_id: str
    start: datetime
    end: datetime
    spans: list[SpanOut]
    gaps: list[GapOut]
    can_restore: bool  # holds export (or admin) on this camera: may ask for restores
    can_export: bool  # the same permission: may export clips (of the ranges it covers)


def _range(
    c: Caller, camera_id: str, start: str | None, end: str | None
) -> tuple[str, datetime, datetime]:
    cam = params.camera_id(camera_id)
    t0, t1 = params.time_range(
        start, end, now=c.svc.clock(), max_span=timedelta(days=c.svc.settings.max_range_days)
    )
    if c.access.camera(cam) is None:
        raise ApiError(404, "no such camera", None)
    return cam, t0, t1


def _can_export(c: Caller, camera_id: str) -> bool:
    if c.who.is_admin:
        return True
    who = Principal(c.who.user_id, c.access.group_ids_of(c.who.user_id))
    now = c.svc.clock()
    return any(
        applies_to(g.grant, who)
        and g.grant.permission >= Permission.EXPORT
        and (g.grant.expires_at is None or g.grant.expires_at > now)
        for g in c.access.list_grants(camera_id=camera_id)
    )


@router.get("/cameras/{camera_id}/timeline", response_model=TimelineOut)
def timeline(c: CallerDep, camera_id: str, start: Start = None, end: End = None) -> TimelineOut:
    """Covered spans and gaps of [start, end), computed in SQL under row-level security."""
    cam, t0, t1 = _range(c, camera_id, start, end)
    spans = TimelineCatalog(c.svc.access.connector, c.who).spans(cam, t0, t1)
    may_export = _can_export(c, cam)
    return TimelineOut(
        camera_id=cam,
        start=t0,
        end=t1,
        spans=[
            SpanOut(
                start=s.start,
                end=s.end,
                state=s.state,
                recordings=s.recordings,
                codecs=list(s.codecs),
            )
            for s in spans
        ],
        gaps=[
            GapOut(start=g.start, end=g.end, seconds=(g.end - g.start).total_seconds())
            for g in gaps_between(spans)
        ],
        can_restore=may_export,
        can_export=may_export,
    )


def _first_keyframes(c: Caller, entries: list[PlaylistEntry]) -> list[PlaylistEntry]:
    """A part that begins inside its recording plays from the first keyframe at or after
    that instant (as media.ts cuts it): its PROGRAM-DATE-TIME and duration say so, or the
    page's clock would be up to one GOP early. One keyframe probe per such part (a window
    has at most one), no database connection held."""
    out = []
    for e in entries:
        rec_start = e.recording_start
        if not e.clipped or rec_start is None or e.start <= rec_start:
            out.append(e)
            continue
        if e.s3_bucket != c.svc.store.bucket:
            continue  # media.ts would refuse it too (409)
        url = c.svc.store.presign_get(e.s3_key, c.svc.settings.presign_ttl_seconds)
        offset = (e.start - rec_start).total_seconds()
        try:
            _, frames = probe_keyframes(url, offset)
        except (StorageUnavailable, InvalidMedia):
            out.append(e)  # media.ts answers with the reason when the player asks
            continue
        if frames.after is None:
            continue  # no keyframe inside the part: nothing of it can be played
        first = rec_start + timedelta(seconds=frames.after)
        if first < e.end:
            seconds = (e.end - first).total_seconds()
            out.append(replace(e, first_frame=max(first, e.start), duration_seconds=seconds))
    return out


def _pdt(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_us(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _media_url(e: PlaylistEntry) -> str:
    """A visible sub-range of a recording is fetched as just that part."""
    path = f"/api/recordings/{e.id}/media.ts"
    if not e.clipped:
        return path
    return f"{path}?{urlencode({'start': _iso_us(e.start), 'end': _iso_us(e.end)})}"


@router.get(
    "/cameras/{camera_id}/playlist.m3u8",
    response_class=Response,
    responses={200: {"content": {"application/vnd.apple.mpegurl": {}}}},
)
def playlist(c: CallerDep, camera_id: str, start: Start = None, end: End = None) -> Response:
    """An HLS VOD playlist of the playable recordings in [start, end); archived ones are
    left out (the timeline shows them). Audited as one playback start."""
    cam, t0, t1 = _range(c, camera_id, start, end)
    entries = TimelineCatalog(c.svc.access.connector, c.who).playlist(
        cam, t0, t1, limit=MAX_PLAYLIST_ENTRIES
    )
    playable = _first_keyframes(c, [e for e in entries if e.playable])
    if not playable:
        raise ApiError(404, "no playable footage in this range", "start")
    target = max(1, math.ceil(max(e.duration_seconds for e in playable)))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-MEDIA-SEQUENCE:0",
    ]
    for i, e in enumerate(playable):
        if i:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(e.first_frame or e.start)}")
        lines.append(f"#EXTINF:{e.duration_seconds:.3f},")
        lines.append(_media_url(e))
    lines.append("#EXT-X-ENDLIST")
    c.audit(
        "playback",
        camera_id=cam,
        recording_id=playable[0].id,
        recording_start=playable[0].recording_start or playable[0].start,
        detail={
            "playlist": True,
            "start": t0.isoformat(),
            "end": t1.isoformat(),
            "recordings": len(playable),
            "skipped_archived": len(entries) - len(playable),
        },
    )
    return Response(
        "\n".join(lines) + "\n",
        media_type="application/vnd.apple.mpegurl",
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/recordings/{recording_id}/media.ts",
    response_class=StreamingResponse,
    responses={200: {"content": {"video/mp2t": {}}}, 409: {"description": "archived"}},
)
def media(
    c: CallerDep,
    recording_id: RecordingId,
    start: VisibleStart = None,
    end: VisibleEnd = None,
) -> StreamingResponse:
    """The recording remuxed to MPEG-TS (stream copy). Only for a recording the caller may
    see and that is not in Glacier. Where only part of it is visible (a windowed grant), or
    ``start``/``end`` ask for a part, just that part: cut as the export planner cuts a
    window (first keyframe at or after its start, nothing at or after its end)."""
    t0 = params.parse_time(start, "start")
    t1 = params.parse_time(end, "end")
    # No pooled connection is held across S3 (gate HEAD, keyframe probes): 1. visible?
    # (short transaction) 2. gate, presign, plan — no transaction 3. audit (short).
    found = c.access.recording(recording_id)
    if found is None:
        raise ApiError(404, "no such recording", None)
    seen = found[0]
    c.svc.gate.check(seen)
    s, e = window(seen, t0, t1)
    url = presign(c.svc.store, seen, c.svc.settings.presign_ttl_seconds)
    if not seen.clipped and (s, e) == (seen.start_time, seen.end_time):
        return _whole(seen, url)
    return _part(c, seen, url, s, e)


def _part(c: Caller, seen: Recording, url: str, s: datetime, e: datetime) -> StreamingResponse:
    assert seen.id is not None
    try:
        # allowed_start = s: a keyframe before the window start is never used
        plan = plan_sources([Source(seen.id, seen.start_time, seen.end_time, url)], s, e, s)
    except (StorageUnavailable, InvalidMedia) as exc:
        if _object_missing(url):
            raise _missing(seen) from exc
        if isinstance(exc, InvalidMedia):
            raise ApiError(409, f"recording {seen.id} is not readable video", None) from exc
        raise ApiError(503, f"recording {seen.id} could not be read from storage", None) from exc
    except InputError as exc:  # no keyframe inside the part
        raise ApiError(409, str(exc), "start") from exc

    def issue(rec: Recording) -> tuple[None, AuditEntry]:
        unchanged(rec, seen)
        return None, c.audit_entry(
            "playback.media",
            camera_id=rec.camera_id,
            recording_id=rec.id,
            recording_start=rec.start_time,
            s3_key=rec.s3_key,
            detail={"start": s.isoformat(), "end": e.isoformat(), "clipped": rec.clipped},
        )

    c.access.with_recording(seen.id, issue)
    clip = c.svc.clips
    exe = clip.ffmpeg if clip is not None else ffmpeg_exe()
    tmp = clip.tmp_dir if clip is not None else pathlib.Path(tempfile.gettempdir())
    tmp.mkdir(parents=True, exist_ok=True)
    headers = {
        "Cache-Control": "no-store",
        "X-Camvault-Start": plan.actual_start.isoformat(),
        "X-Camvault-End": plan.actual_end.isoformat(),
    }
    script = tmp / f"media-{uuid.uuid4().hex}.ffconcat"
    return StreamingResponse(stream_ts(exe, plan, script), media_type="video/mp2t", headers=headers)


def _missing(rec: Recording) -> ApiError:
    # the catalog has it, the bucket not: not a server fault
    return ApiError(
        404,
        f"recording {rec.id}'s object is missing from storage (`camvault reconcile` flags it)",
        "recording_id",
    )


def _whole(rec: Recording, url: str) -> StreamingResponse:
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
        "-i", url, "-map", "0:v:0", "-map", "0:a:0?", "-c:v", "copy", "-c:a", "aac",
        "-f", "mpegts", "pipe:1",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out = proc.stdout
    first = out.read(_CHUNK)  # nothing at all: the object could not be read or remuxed
    if not first:
        proc.wait()
        out.close()
        if _object_missing(url):
            raise _missing(rec)
        raise ApiError(503, f"recording {rec.id} could not be read from storage", None)

    def stream() -> Iterator[bytes]:
        try:
            yield first
            while chunk := out.read(_CHUNK):
                yield chunk
        finally:  # also when the player hangs up mid-stream
            _reap(proc, out)

    body = stream()
    # a player that hangs up before the body is iterated never runs its finally: reap then
    weakref.finalize(body, _reap, proc, out)
    return StreamingResponse(
        body, media_type="video/mp2t", headers={"Cache-Control": "private, max-age=300"}
    )


def _reap(proc: subprocess.Popen[bytes], out: IO[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    out.close()


def _object_missing(url: str) -> bool:
    """True when S3 answers 404 for the presigned GET (one byte asked for)."""
    req = urllib.request.Request(url, headers={"Range": "bytes=0-0"})
    try:
        with urllib.request.urlopen(req, timeout=5):
            return False
    except urllib.error.HTTPError as exc:
        return exc.code == 404
    except OSError:
        return False

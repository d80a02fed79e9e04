"""Real footage in SeaweedFS with catalog rows, and the API wired with clip exports and
export workers — shared by the export, clipped-playback and ACL tests.

Footage: H.264, 10 fps, one keyframe per second (GOP 10), no B-frames, so every frame's
wall-clock instant is ``recording start + pts`` and a cut can be checked frame by frame.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av
import httpx
import psycopg

from camvault.api import ApiServices, create_app
from camvault.api.server import ApiServer
from camvault.catalog.access import AccessCatalog, RoleConnector
from camvault.catalog.connector import PsycopgConnector
from camvault.config import ApiSettings, S3Settings
from camvault.embedded import SeaweedFS
from camvault.export.jobs import ExportRequests, ExportRunner
from camvault.export.media import ffmpeg_exe
from camvault.export.service import ClipServices
from camvault.export.worker import ExportWorkers, feed_options
from camvault.storage import S3ObjectStore, make_client
from tests.integration.access_env import Rec, add_recordings
from tests.media import make_h264

FPS = 10
GOP = timedelta(seconds=1)
FRAME = timedelta(seconds=1 / FPS)


def upload_footage(
    s3: Any, bucket: str, db_url: str, camera: str, starts: list[datetime], seconds: int,
    tmp: Path, *, fragmented: bool = False, audio: bool | str = False,
) -> list[Rec]:  # fmt: skip
    """One recording of ``seconds`` per start: a real MP4 in S3 and its catalog row.
    ``fragmented``: in the recorder's layout (fragmented MP4, a fragment at every keyframe
    and every 0.5 s, so half of them start between keyframes), else +faststart.
    ``audio``: with an AAC track (a job that keeps it splices it too), or one in the codec
    named (not AAC: a job that keeps it is cut by ffmpeg)."""
    codec = "aac" if audio is True else audio
    plain = tmp / f"footage-{seconds}s{f'-{codec}' if codec else ''}.mp4"
    if not plain.exists():
        make_h264(plain, seconds=seconds, fps=FPS, gop=FPS, audio=bool(audio))
        if codec != "aac" and codec:
            aac = plain.with_name(f"{plain.stem}-aac.mp4")
            plain.rename(aac)
            subprocess.run(
                [ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(aac), "-c:v", "copy",
                 "-c:a", str(codec), "-movflags", "+faststart", str(plain)],
                check=True, capture_output=True,
            )  # fmt: skip
    src = plain
    if fragmented:
        src = plain.with_name(f"{plain.stem}-frag.mp4")
        flags = "frag_keyframe+empty_moov+default_base_moof"
        subprocess.run(
            [ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(plain), "-c", "copy",
             "-movflags", flags, "-frag_duration", "500000", str(src)],
            check=True, capture_output=True,
        )  # fmt: skip
    recs = []
    for s in starts:
        (rec,) = add_recordings(
            db_url, camera, 1, start=s, length=timedelta(seconds=seconds), bucket=bucket
        )
        body = src.read_bytes()
        s3.put_object(Bucket=bucket, Key=rec.key, Body=body, ServerSideEncryption="AES256")
        with psycopg.connect(db_url) as conn:  # the object's real size, as ingest records it
            conn.execute("UPDATE recordings SET size_bytes = %s WHERE id = %s", (len(body), rec.id))
        recs.append(rec)
    return recs


def frame_times(data: bytes, origin: datetime, tmp: Path) -> list[datetime]:
    """Wall-clock instant of every decoded frame of an MP4 whose first frame is ``origin``."""
    path = tmp / "decoded.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        out = []
        first = None
        for f in c.decode(vs):
            t = float(f.pts * f.time_base)
            first = t if first is None else first
            out.append(origin + timedelta(seconds=round(t - first, 4)))
    return out


@dataclass
class ClipApi:
    client: httpx.Client
    runner: ExportRunner
    store: S3ObjectStore


@contextmanager
def clip_api(
    db_url: str,
    *,
    seaweed: SeaweedFS,
    bucket: str,
    tmp: Path,
    workers: int = 2,
    api: dict[str, Any] | None = None,
) -> Iterator[ClipApi]:
    """The app served by uvicorn as in production (API role, RLS) plus export workers
    running as the service role."""
    connector = PsycopgConnector(db_url, max_size=6, application_name="camvault-api-test")
    service = PsycopgConnector(db_url, max_size=4, application_name="camvault-export-test")
    s3 = S3Settings(bucket=bucket, endpoint_url=seaweed.endpoint_url, addressing_style="path")
    credentials = (seaweed.access_key, seaweed.secret_key)
    store = S3ObjectStore(make_client(s3, credentials=credentials), s3)
    as_api = RoleConnector(connector, "camvault_api")
    settings = ApiSettings(**(api or {}))
    clips = ClipServices(
        ExportRequests(as_api, max_minutes=settings.max_export_minutes),
        ffmpeg=ffmpeg_exe(),
        tmp_dir=tmp / "clips",
        feed=feed_options(settings),
    )
    services = ApiServices(
        access=AccessCatalog(as_api), store=store, settings=settings, clips=clips
    )
    runner = ExportRunner(
        service, store, prefix="", tmp_dir=tmp / "exports", ffmpeg=ffmpeg_exe(),
        stale_seconds=settings.export_stale_seconds, feed=feed_options(settings),
    )  # fmt: skip
    pool = ExportWorkers(runner, threads=workers, poll_seconds=0.2) if workers else None
    server = ApiServer(create_app(services), "127.0.0.1", 0)
    try:
        url = server.start()
        if pool is not None:
            pool.start()
        with httpx.Client(base_url=url, timeout=60) as client:
            yield ClipApi(client, runner, store)
    finally:
        if pool is not None:
            pool.stop(timeout=30)
        server.stop()
        connector.close()
        service.close()

"""The streamed clip relay (``media._stream``) and the export renderer (``render_stream``)
on a local file: the bytes are a playable fragmented MP4, and a consumer that stops early
gets ffmpeg killed, its script removed and no descriptor leaked."""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import imageio_ffmpeg
import pytest

from camvault.export import media
from camvault.export.clip import ClipPlan, Source, plan_clip
from camvault.export.media import ClipMetadata, ffmpeg_exe, render_stream, stream_fragments
from tests.splicing import Collect

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SECONDS = 12


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> ClipPlan:
    """12 s of 15 fps footage at ~4 Mbit/s (~6 MB: more than the relay's 1 MB pipe)."""
    path = tmp_path_factory.mktemp("clip") / "r.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi",
         "-i", f"testsrc2=size=320x240:rate=15:duration={SECONDS}", "-c:v", "libx264",
         "-preset", "ultrafast", "-g", "30", "-b:v", "4M", "-pix_fmt", "yuv420p",
         "-movflags", "+faststart", str(path)],
        check=True,
    )  # fmt: skip
    src = Source(1, T0, T0 + timedelta(seconds=SECONDS), f"file://{path}")
    return plan_clip([src], T0, src.end, keyframes=None, allowed_start=T0)


def frames(data: bytes, tmp: Path) -> int:
    out = tmp / "got.mp4"
    out.write_bytes(data)
    with av.open(str(out)) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_streamed_clip_is_the_whole_fragmented_mp4(plan: ClipPlan, tmp_path: Path) -> None:
    async def collect() -> bytes:
        gen = stream_fragments(ffmpeg_exe(), plan, tmp_path / "s.ffconcat", strict=False)
        return b"".join([chunk async for chunk in gen])

    data = asyncio.run(collect())
    assert data.find(b"moov") < data.find(b"moof") and frames(data, tmp_path) == SECONDS * 15
    assert not (tmp_path / "s.ffconcat").exists()


def test_consumer_gone_kills_ffmpeg(
    plan: ClipPlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    procs: list[Any] = []
    real = asyncio.create_subprocess_exec

    async def spy(*a: Any, **kw: Any) -> Any:
        procs.append(await real(*a, **kw))
        return procs[-1]

    monkeypatch.setattr(media.asyncio, "create_subprocess_exec", spy)
    before = open_fds()

    async def first_chunk_only() -> None:
        gen = stream_fragments(
            ffmpeg_exe(), plan, tmp_path / "s.ffconcat", strict=False, chunk=4096
        )
        assert await anext(gen)
        await gen.aclose()  # the client went away

    asyncio.run(first_chunk_only())
    assert procs[0].returncode == -9  # killed while blocked on a full pipe, not finished
    assert not (tmp_path / "s.ffconcat").exists()
    assert open_fds() == before


def test_render_stream_reports_progress_and_writes_metadata(plan: ClipPlan, tmp_path: Path) -> None:
    sink = Collect()
    seen: list[float] = []
    meta = ClipMetadata("t", '{"mp4_layout":"fragmented"}', "2026-11-20T10:00:00.000000Z")
    render_stream(ffmpeg_exe(), plan, tmp_path / "e.ffconcat", meta, sink, on_progress=seen.append)
    data = bytes(sink.buf[: sink.n])
    assert frames(data, tmp_path) == SECONDS * 15
    assert seen and seen == sorted(seen) and 0 < seen[-1] <= 99
    with av.open(str(tmp_path / "got.mp4")) as c:
        assert c.metadata["comment"] == '{"mp4_layout":"fragmented"}'

"""Feeding ffmpeg through FIFOs from ranged GETs (``export.feed``), on the S3 twin with
real ffmpeg: the clip is byte for byte the one ffmpeg makes reading the files itself,
whatever the catalog says the objects' sizes are; an outpoint stops the GETs of the rest
of an object; memory is the fixed buffer pool; a GET that keeps failing fails the clip
(never a clip with a hole that looks like a success) and leaves no ffmpeg, FIFO or thread."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import imageio_ffmpeg
import pytest

from camvault.errors import StorageUnavailable
from camvault.export.clip import ClipPlan, Keyframes, Source, plan_clip
from camvault.export.feed import Feed, FeedOptions, sweep_dead_dirs
from camvault.export.media import ClipMetadata, ffmpeg_exe, render_stream, stream_fragments
from camvault.s3.memory import MemoryObject, MemoryObjectStore

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SECONDS = 20
KB = 1024
SMALL = FeedOptions(part_bytes=512 * KB, parallel=2, ahead=3)


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s at ~4 Mbit/s (10 MB: ten times the FIFO's buffer), fragmented as the recorder
    writes it (moov first, 1 s fragments)."""
    path = tmp_path_factory.mktemp("feed") / "r.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi",
         "-i", f"testsrc2=size=320x240:rate=15:duration={SECONDS}", "-c:v", "libx264",
         "-preset", "ultrafast", "-g", "15", "-b:v", "4M", "-pix_fmt", "yuv420p",
         "-movflags", "+frag_keyframe+empty_moov+default_base_moof",
         "-frag_duration", "1000000", str(path)],
        check=True,
    )  # fmt: skip
    return path


def world(footage: Path, *, size_delta: int = 0, n: int = 3, end: float = 0) -> tuple[
    MemoryObjectStore, ClipPlan
]:  # fmt: skip
    """``n`` recordings back to back in the twin; the clip starts inside the first (an
    inpoint: read from its URL) and ends at ``end`` seconds (0: the end)."""
    store = MemoryObjectStore()
    body = footage.read_bytes()
    sources = []
    for i in range(n):
        key = f"cam/r{i}.mp4"
        store.objects[key] = MemoryObject(body, {}, "AES256")
        s = T0 + timedelta(seconds=SECONDS * i)
        url = f"file://{footage}"
        size = len(body) + size_delta
        sources.append(Source(i, s, s + timedelta(seconds=SECONDS), url, key=key, size=size))
    plan = plan_clip(
        sources,
        T0 + timedelta(seconds=2.5),
        T0 + timedelta(seconds=end or n * SECONDS),
        keyframes=Keyframes(2.0, 3.0),
        allowed_start=T0,
    )
    return store, plan


class Sink:
    def __init__(self) -> None:
        self.buf = bytearray(256 * KB)
        self.out = bytearray()

    def space(self) -> memoryview:
        return memoryview(self.buf)

    def commit(self, n: int) -> None:
        self.out += self.buf[:n]


META = ClipMetadata("t", "{}", "2026-11-20T10:00:00.000000Z")


def render(plan: ClipPlan, tmp: Path, feed: Feed | None = None) -> bytes:
    sink = Sink()
    script = tmp / "s.ffconcat"
    render_stream(ffmpeg_exe(), plan, script, META, sink, on_progress=lambda p: None, feed=feed)
    return bytes(sink.out)


@pytest.mark.parametrize("size_delta", [0, -50_000, 40_000], ids=["exact", "smaller", "larger"])
def test_fed_clip_is_the_clip_ffmpeg_makes_from_the_files(
    footage: Path, tmp_path: Path, size_delta: int
) -> None:
    store, plan = world(footage, size_delta=size_delta)
    want = render(plan, tmp_path)
    feed = Feed(store, plan, SMALL)
    with feed as fed:
        assert fed.entries[0].source.url == plan.entries[0].source.url  # the inpoint entry
        assert all(Path(e.source.url).is_fifo() for e in fed.entries[1:])
        got = render(fed, tmp_path, feed)
    assert got == want and len(got) > 1_000_000
    assert feed.fetched_bytes == 2 * footage.stat().st_size  # entries 2 and 3, whole
    assert feed.buffers <= SMALL.ahead + 1  # the pool (+1: the tail of a larger object)
    assert {k for op, k in store.calls if op == "read_range"} == {"cam/r1.mp4", "cam/r2.mp4"}
    assert not Path(fed.entries[1].source.url).parent.exists()


def test_an_outpoint_stops_the_gets_of_the_rest(footage: Path, tmp_path: Path) -> None:
    store, plan = world(footage, n=2, end=SECONDS + 1.0)  # 1 s of the second recording
    want = render(plan, tmp_path)
    feed = Feed(store, plan, SMALL)
    with feed as fed:
        got = render(fed, tmp_path, feed)
    assert got == want
    size = footage.stat().st_size
    # what ffmpeg read up to the outpoint, the FIFO's 1 MiB and the parts ahead: not the rest
    assert 0 < feed.fetched_bytes < size / 20 + 1024 * KB + SMALL.ahead * SMALL.part_bytes
    assert len([1 for op, _ in store.calls if op == "read_range"]) < size // SMALL.part_bytes


def test_a_failing_get_fails_the_clip_and_leaves_nothing(footage: Path, tmp_path: Path) -> None:
    store, plan = world(footage)

    def fault(op: str, key: str) -> None:
        if op == "read_range" and key == "cam/r2.mp4":
            raise StorageUnavailable("S3 GET failed: network", code="network")

    store.fault = fault
    threads = threading.active_count()
    feed = Feed(store, plan, FeedOptions(part_bytes=512 * KB, parallel=2, ahead=2))
    with pytest.raises(StorageUnavailable), feed as fed:
        render(fed, tmp_path, feed)
    assert not Path(fed.entries[1].source.url).parent.exists()
    assert threading.active_count() == threads
    tries = [k for op, k in store.calls if op == "read_range" and k == "cam/r2.mp4"]
    assert len(tries) >= 3  # retried before giving up


def test_streamed_route_fed_is_the_same_clip(footage: Path, tmp_path: Path) -> None:
    store, plan = world(footage)

    async def collect(fed: bool) -> bytes:
        gen = stream_fragments(
            ffmpeg_exe(), plan, tmp_path / "c.ffconcat", strict=False,
            store=store if fed else None, feed=SMALL,
        )  # fmt: skip
        return b"".join([chunk async for chunk in gen])

    want = asyncio.run(collect(False))
    assert asyncio.run(collect(True)) == want and len(want) > 1_000_000
    assert {k for op, k in store.calls if op == "read_range"} == {"cam/r1.mp4", "cam/r2.mp4"}


def test_fifo_dirs_of_dead_processes_are_swept(tmp_path: Path) -> None:
    """An API killed while streaming leaves its feed's FIFO directory; the next sweep
    removes it — and only it: a live process's directory (ours) stays."""
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process now
    dead = tmp_path / f"camvault-feed-{gone.pid}-abc"
    live = tmp_path / f"camvault-feed-{os.getpid()}-def"
    other = tmp_path / "camvault-feed-notapid"
    for d in (dead, live, other):
        d.mkdir()
    os.mkfifo(dead / "0.mp4")
    assert sweep_dead_dirs(tmp_path) == 1
    assert not dead.exists() and live.is_dir() and other.is_dir()

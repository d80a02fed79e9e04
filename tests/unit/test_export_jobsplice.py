"""An export job's clip spliced from the recordings' samples (``export.jobsplice``): the
plan's frames, the tags ffmpeg writes (title, comment, creation time) read back the same,
progress as it goes, the audio rule of the job's cut, a failed GET or a lost job stopping
it — and no PyAV in the job's process."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest

from camvault.errors import JobLost, StorageUnavailable
from camvault.export import jobsplice
from camvault.export.clip import CUT_AFTER, CUT_BEFORE, ClipPlan, Source
from camvault.export.fmp4 import init_segment
from camvault.export.media import ClipMetadata, ffmpeg_exe, render_stream
from camvault.export.rangeindex import Index
from camvault.export.splice import Splice
from camvault.mp4track import read_moov
from tests.media import make_h264
from tests.splicing import (
    T0,
    Collect,
    Store,
    audio_packets,
    box_payload,
    decode,
    expected,
    expected_audio,
    recorder,
    rounded,
    source,
)

TAGS = ("title", "comment", "creation_time")


def _sources(layout: str, tmp: Path, store: Store, *, audio: bool = False) -> list[Source]:
    if layout == "recorder":  # 4 s fragmented segments, a fragment every second
        paths = recorder(tmp, seconds=12.0, audio=audio)
    else:
        paths = [
            make_h264(tmp / f"{n}.mp4", seconds=4.0, gop=30, audio=audio, faststart=True)
            for n in range(3)
        ]
    return [source(store, n, p, T0 + timedelta(seconds=4 * n), 4.0) for n, p in enumerate(paths)]


def _plan(
    store: Store, sources: list[Source], start: float, allowed: float
) -> tuple[ClipPlan, list[Index]]:
    planned = jobsplice.plan_job(
        store, sources, T0 + timedelta(seconds=start), T0 + timedelta(seconds=10.5),
        T0 + timedelta(seconds=allowed), ffmpeg=ffmpeg_exe(),
    )  # fmt: skip
    assert planned is not None
    return planned


def _meta(plan: ClipPlan) -> ClipMetadata:
    comment = {"camera_id": "gate", "actual": [plan.actual_start.isoformat()], "gaps": []}
    return ClipMetadata(
        title=f"gate {plan.actual_start.isoformat()}",
        comment=json.dumps(comment, separators=(",", ":")),
        creation_time=plan.actual_start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    )


def _write(sp: Splice, plan: ClipPlan, seen: list[float] | None = None) -> bytes:
    sink = Collect()
    jobsplice.write(
        sp, sink, plan.seconds, on_progress=(seen if seen is not None else []).append,
        check=lambda: None,
    )  # fmt: skip
    return sink.data()


def _tags(data: bytes) -> dict[str, str]:
    with av.open(io.BytesIO(data)) as c:
        return {k: c.metadata[k] for k in TAGS}


@pytest.mark.parametrize("layout", ["recorder", "faststart"])
def test_job_splice_is_the_plans_frames_with_ffmpegs_tags(layout: str, tmp_path: Path) -> None:
    store = Store()
    plan, indexes = _plan(store, _sources(layout, tmp_path, store), 2.5, 0.0)
    assert plan.cut == CUT_BEFORE and len(plan.entries) == 3
    meta = _meta(plan)
    sp = jobsplice.prepare_job(store, plan, indexes, meta)
    assert sp is not None
    seen: list[float] = []
    data = _write(sp, plan, seen)
    got, audio = decode(data)
    assert got == expected(plan) and audio == 0 and len(got) > 100
    # the tags as ffmpeg's route writes them from the same metadata, read back equal
    ffmpeg = Collect()
    render_stream(ffmpeg_exe(), plan, tmp_path / "j.ffconcat", meta, ffmpeg, on_progress=print)
    want = _tags(ffmpeg.data())
    assert _tags(data) == want
    assert want["title"] == meta.title and json.loads(want["comment"]) == json.loads(meta.comment)
    assert want["creation_time"] == plan.actual_start.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    # progress advanced while it was written, below 100 (the job says 100 once done)
    assert len(seen) > 1 and seen == sorted(seen) and 0 < seen[-1] <= 99
    # ended as ffmpeg ends it: an mfra whose mfro points back at it
    mfra = int.from_bytes(data[-4:], "big")
    assert data[-mfra + 4 : -mfra + 8] == b"mfra"


@pytest.mark.parametrize("layout", ["recorder", "faststart"])
def test_audio_kept_by_the_jobs_cut_is_spliced(layout: str, tmp_path: Path) -> None:
    """CUT_BEFORE keeps the AAC audio (ffmpeg maps it): spliced with it, each packet of
    the plan's span at its place, the tags and the mfra (video) as without. A CUT_AFTER
    clip has none (ffmpeg drops it): spliced, video only."""
    store = Store()
    sources = _sources(layout, tmp_path, store, audio=True)
    plan, indexes = _plan(store, sources, 2.5, 0.0)
    assert plan.cut == CUT_BEFORE and len(plan.entries) == 3
    meta = _meta(plan)
    sp = jobsplice.prepare_job(store, plan, indexes, meta)
    assert sp is not None
    data = _write(sp, plan)
    got, audio = decode(data)
    assert got == expected(plan) and audio == 1
    codec, packets, _ = audio_packets(data)
    assert codec == "aac" and rounded(packets) == expected_audio(plan) and len(packets) > 300
    assert _tags(data)["title"] == meta.title
    mfra = int.from_bytes(data[-4:], "big")
    assert data[-mfra + 4 : -mfra + 8] == b"mfra"
    plan, indexes = _plan(store, sources, 0.5, 0.5)
    assert plan.cut == CUT_AFTER
    sp = jobsplice.prepare_job(store, plan, indexes, _meta(plan))
    assert sp is not None
    got, audio = decode(_write(sp, plan))
    assert audio == 0 and got == expected(plan)


def test_a_failed_get_or_a_lost_job_stops_it(tmp_path: Path) -> None:
    store = Store()
    plan, indexes = _plan(store, _sources("recorder", tmp_path, store), 0.5, 0.0)
    sp = jobsplice.prepare_job(store, plan, indexes, _meta(plan))
    assert sp is not None
    store.fail_after = store.reads + 2
    with pytest.raises(StorageUnavailable, match="boom"):
        _write(sp, plan)
    store.fail_after = None
    sp = jobsplice.prepare_job(store, plan, indexes, _meta(plan))
    assert sp is not None
    reads = store.reads

    def lost() -> None:
        raise JobLost("taken over")

    with pytest.raises(JobLost):
        jobsplice.write(sp, Collect(), plan.seconds, on_progress=print, check=lost)
    assert store.reads - reads <= 3  # its GETs stopped with it (one may run ahead)


def test_a_job_splice_loads_no_pyav(tmp_path: Path) -> None:
    """The job's process plans (fragmented first recording: keyframes from the ffmpeg
    binary) and splices without importing PyAV."""
    store = Store()
    _sources("recorder", tmp_path, store)
    script = f"""
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from camvault.export import jobs, jobsplice
from camvault.export.clip import Source
from camvault.export.media import ffmpeg_exe
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
class Store:
    def __init__(self): self.objects = {{}}
    def read_range(self, key, offset, into):
        data = self.objects[key][offset : offset + len(into)]
        into[: len(data)] = data
        return len(data), len(self.objects[key])
class Sink:
    def __init__(self): self.n, self.buf = 0, bytearray(1 << 16)
    def space(self): return memoryview(self.buf)
    def commit(self, n): self.n += n
store, sources = Store(), []
for n, p in enumerate(sorted(Path({str(tmp_path)!r}).glob("rec*.mp4"))):
    store.objects[p.name] = p.read_bytes()
    at = T0 + timedelta(seconds=4 * n)
    size = p.stat().st_size
    sources.append(Source(n, at, at + timedelta(seconds=4), str(p), key=p.name, size=size))
start, end = T0 + timedelta(seconds=5.5), T0 + timedelta(seconds=10)
plan, indexes = jobsplice.plan_job(store, sources, start, end, T0, ffmpeg=ffmpeg_exe())
meta = jobs.ClipMetadata("t", "{{}}", "2026-11-20T10:00:00.000000Z")
sp = jobsplice.prepare_job(store, plan, indexes, meta)
sink = Sink()
jobsplice.write(sp, sink, plan.seconds, on_progress=lambda p: None, check=lambda: None)
print(sink.n, "av" in sys.modules)
"""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=120,
        env={"PYTHONPATH": f"{root / 'src'}:{root}", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    size, loaded = proc.stdout.split()
    assert int(size) > 10_000 and loaded == "False"


@pytest.mark.parametrize("year", [2026, 2045])  # 2045: past 32-bit 1904 seconds (version 1)
def test_header_times_and_tags_read_back(year: int, tmp_path: Path) -> None:
    src = read_moov(box_payload(make_h264(tmp_path / "a.mp4").read_bytes(), b"moov"))
    created = datetime(year, 3, 1, 12, 30, 15, tzinfo=UTC)
    meta = ClipMetadata("cam", '{"k":"ü"}', created.strftime("%Y-%m-%dT%H:%M:%S.123456Z"))
    init = init_segment(src.entry, src.timescale, 320, 240, jobsplice.header(meta))
    track = read_moov(box_payload(init, b"moov"))
    assert track.movie_created == track.created == created
    assert (track.entry, track.timescale, track.fragmented) == (src.entry, src.timescale, True)
    meta_box = box_payload(box_payload(box_payload(init, b"moov"), b"udta"), b"meta")[4:]
    assert b"mdir" in box_payload(meta_box, b"hdlr")
    ilst = box_payload(meta_box, b"ilst")
    title = box_payload(box_payload(ilst, b"\xa9nam"), b"data")
    comment = box_payload(box_payload(ilst, b"\xa9cmt"), b"data")
    assert title == bytes([0, 0, 0, 1, 0, 0, 0, 0]) + b"cam"  # UTF-8, no locale
    assert comment[8:].decode() == '{"k":"ü"}'

"""The export job's keyframe probes by the ffmpeg binary (``export.ffprobe``) give the
answers the plan needs — each file's first video timestamp, and the keyframes at or
before / at or after an offset — checked against every packet PyAV demuxes (no seek),
on the layouts recordings come in: faststart MP4, the recorder's fragmented MP4 (here
with B-frames and shifted timestamps) and Matroska with audio."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import pytest

from camvault.errors import InvalidMedia, StorageUnavailable
from camvault.export import ffprobe
from camvault.export.media import ffmpeg_exe, probe_origin
from camvault.export.media import probe_keyframes as pyav_probe_keyframes
from tests.media import make_h264

FF = ffmpeg_exe()


def _encode(path: Path, *extra: str) -> Path:
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
         "-i", "testsrc2=size=160x120:rate=10:duration=8", "-f", "lavfi",
         "-i", "sine=duration=8", "-map", "0:v", "-map", "1:a", "-c:a", "aac",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-bf", "2", *extra, str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module", params=["faststart", "fragmented", "matroska"])
def footage(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ffprobe")
    if request.param == "faststart":
        return make_h264(d / "r.mp4", seconds=8, fps=10, gop=10, audio=True)
    if request.param == "fragmented":  # the recorder's layout
        flags = "+frag_keyframe+empty_moov+default_base_moof"
        return _encode(d / "r.mp4", "-output_ts_offset", "7.3", "-movflags", flags)
    return _encode(d / "r.mkv", "-output_ts_offset", "3")


def _truth(path: Path) -> tuple[float, list[float]]:
    """The first video timestamp and every keyframe (seconds from it), by demuxing all."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        tb = Fraction(vs.time_base)
        origin = vs.start_time or 0
        keys = sorted(
            float((p.pts - origin) * tb) for p in c.demux(vs) if p.pts is not None and p.is_keyframe
        )
    return float(origin * tb), keys


def test_origin_is_pyavs(footage: Path) -> None:
    assert ffprobe.probe_origin(FF, str(footage)) == probe_origin(str(footage))


def test_keyframes_around_every_offset(footage: Path) -> None:
    origin, keys = _truth(footage)
    assert len(keys) >= 6
    for i in range(0, 80, 3):
        offset = i / 10 + 0.05 * (i % 2)  # on keyframes, between them, past the last one
        got = ffprobe.probe_keyframes(FF, str(footage), offset, origin=origin)
        before = max((k for k in keys if k <= offset + 1e-6), default=None)
        after = min((k for k in keys if k >= offset - 1e-6), default=None)
        assert (got.before, got.after) == (before, after), offset


def test_pyav_probe_of_the_streamed_routes_agrees(footage: Path) -> None:
    """The streamed routes' PyAV probe: same ground truth (a seek by decoding time used to
    land past the wanted keyframe on B-frame fragmented MP4: 10 of 180 offsets wrong)."""
    origin, keys = _truth(footage)
    for i in range(0, 80, 3):
        offset = i / 10 + 0.05 * (i % 2)
        got_origin, got = pyav_probe_keyframes(str(footage), offset)
        before = max((k for k in keys if k <= offset + 1e-6), default=None)
        after = min((k for k in keys if k >= offset - 1e-6), default=None)
        assert (got_origin, got.before, got.after) == (origin, before, after), offset


def test_with_origins_fills_every_source(footage: Path) -> None:
    from datetime import UTC, datetime

    from camvault.export.clip import Source

    t = datetime(2026, 11, 1, tzinfo=UTC)
    srcs = ffprobe.with_origins(FF, [Source(1, t, t, str(footage)), Source(2, t, t, str(footage))])
    assert [s.origin for s in srcs] == [probe_origin(str(footage))] * 2


def test_unreadable_file_is_invalid_media(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    for url in (str(junk), str(tmp_path / "missing.mp4")):
        with pytest.raises(InvalidMedia):
            ffprobe.probe_origin(FF, url)


def test_unreachable_store_is_unavailable_and_hides_the_url() -> None:
    url = "http://127.0.0.1:9/cam/r.mp4?X-Amz-Signature=secret"
    with pytest.raises(StorageUnavailable) as err:
        ffprobe.probe_keyframes(FF, url, 1.0, origin=0.0)
    assert "secret" not in str(err.value) and "127.0.0.1" not in str(err.value)

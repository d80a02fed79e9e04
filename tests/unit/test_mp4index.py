"""mp4index: a plain MP4's answers from its index must be the demuxer's answers exactly —
and anything the index reader does not vouch for must go to the demuxer."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

import camvault.probe as probe_mod
from camvault.errors import InvalidMedia
from camvault.models import MediaInfo
from camvault.mp4index import read_index
from tests.media import FFMPEG, make_h264, make_h265, make_truncated

STAMP = datetime(2026, 11, 26, 13, 4, 55, tzinfo=UTC)


def _demuxed(path: Path, monkeypatch: pytest.MonkeyPatch) -> MediaInfo:
    with monkeypatch.context() as m:
        m.setattr(probe_mod, "_from_index", lambda path, size: None)
        return probe_mod.probe(path)


def _index_of(path: Path) -> object:
    with path.open("rb") as f:
        return read_index(f, path.stat().st_size)


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", *args], check=True, capture_output=True)


def _trimmed(tmp: Path) -> Path:
    """A stream copy cut at 0.5 s: the GOP's first frames stay as edit-list pre-roll."""
    src = make_h264(tmp / "src.mp4", seconds=3.0, fps=15, gop=30)
    _ffmpeg("-ss", "0.5", "-i", str(src), "-c", "copy", str(tmp / "trimmed.mp4"))
    return tmp / "trimmed.mp4"


def _bframes(tmp: Path) -> Path:
    out = tmp / "bframes.mp4"
    _ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15:duration=2"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-pix_fmt", "yuv420p", str(out)),
    )
    return out


def _segmented(tmp: Path) -> Path:
    """Like the recorder's output: the segment muxer cutting a stream copy into files."""
    src = make_h264(tmp / "src.mp4", seconds=4.0, fps=15, gop=15)
    _ffmpeg(
        *("-i", str(src), "-c", "copy", "-f", "segment", "-segment_time", "2"),
        *("-reset_timestamps", "1", str(tmp / "seg%03d.mp4")),
    )
    return tmp / "seg001.mp4"


def _fragmented(tmp: Path, flags: str = "frag_keyframe+empty_moov", audio: bool = False) -> Path:
    src = make_h264(tmp / "src.mp4", seconds=4.0, audio=audio)
    out = tmp / "frag.mp4"
    _ffmpeg("-i", str(src), "-c", "copy", "-movflags", flags, str(out))
    return out


RECORDER_FLAGS = "+frag_keyframe+empty_moov+default_base_moof"


def _recorder_segment(tmp: Path) -> Path:
    """The recorder's layout: segment muxer, fragmented MP4 with a fragment every second,
    timestamps continuing from the previous segment (not reset)."""
    src = make_h264(tmp / "src.mp4", seconds=6.0, fps=15, gop=30)
    _ffmpeg(
        *("-i", str(src), "-c", "copy", "-f", "segment", "-segment_time", "2"),
        *("-segment_format", "mp4", "-segment_format_options"),
        f"movflags={RECORDER_FLAGS}:frag_duration=1000000",
        str(tmp / "rec%03d.mp4"),
    )
    return tmp / "rec001.mp4"


def _fragmented_bframes(tmp: Path) -> Path:
    out = tmp / "fragb.mp4"
    _ffmpeg("-i", str(_bframes(tmp)), "-c", "copy", "-movflags", RECORDER_FLAGS, str(out))
    return out


# (maker, does the index reader answer for it?)
CASES: dict[str, tuple[Callable[[Path], Path], bool]] = {
    "h264 320x240 15fps": (lambda t: make_h264(t / "a.mp4"), True),
    "h264 640x360 25fps gop 50": (
        lambda t: make_h264(t / "b.mp4", seconds=3.0, size="640x360", fps=25, gop=50),
        True,
    ),
    "h264 odd size 3 s": (lambda t: make_h264(t / "c.mp4", seconds=3.0, size="322x178"), True),
    "mov": (lambda t: make_h264(t / "d.mov", seconds=1.0, size="176x144", fps=10), True),
    "not faststart": (lambda t: make_h264(t / "e.mp4", faststart=False), True),
    "with audio": (lambda t: make_h264(t / "f.mp4", audio=True), True),
    "creation_time": (lambda t: make_h264(t / "g.mp4", creation_time=STAMP), True),
    "h265": (lambda t: make_h265(t / "h.mp4"), True),
    "h265 with audio and time": (
        lambda t: make_h265(t / "i.mov", audio=True, creation_time=STAMP),
        True,
    ),
    "recorder-like segment": (_segmented, True),
    "edit-list pre-roll": (_trimmed, False),
    "B-frames": (_bframes, False),
    "fragmented": (_fragmented, True),
    "fragmented, moof-relative, with audio": (
        lambda t: _fragmented(t, RECORDER_FLAGS, audio=True),
        True,
    ),
    "recorder segment": (_recorder_segment, True),
    "fragmented B-frames": (_fragmented_bframes, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_index_answers_exactly_as_the_demuxer(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, vouched = CASES[case]
    path = make(tmp_path)
    assert (_index_of(path) is not None) is vouched
    assert probe_mod.probe(path) == _demuxed(path, monkeypatch)


def test_creation_time_and_audio_come_from_the_index(tmp_path: Path) -> None:
    index = _index_of(make_h264(tmp_path / "v.mp4", audio=True, creation_time=STAMP))
    assert index is not None
    assert index.creation_time == STAMP and index.has_audio  # type: ignore[attr-defined]
    assert index.samples == 30 and index.duration_seconds == 2.0  # type: ignore[attr-defined]


@pytest.mark.parametrize("fraction", [0.3, 0.7, 0.99])
@pytest.mark.parametrize("layout", ["faststart", "fragmented"])
def test_a_cut_file_is_left_to_the_demuxer(
    fraction: float, layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Samples past the end: not vouched for, even with the framing check out of the way
    (a moov at the front and an mdat whose size says "to the end" look whole)."""
    if layout == "faststart":
        src = make_h264(tmp_path / "src.mp4", seconds=3.0)
    else:
        src = _fragmented(tmp_path, RECORDER_FLAGS)
    cut = make_truncated(src, tmp_path / "cut.mp4", fraction)
    assert _index_of(cut) is None
    monkeypatch.setattr(probe_mod, "_framing", lambda path, size: None)
    with pytest.raises(InvalidMedia, match=r"^truncated"):
        probe_mod.probe(cut)


def test_a_damaged_decoder_config_is_left_to_the_demuxer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index alone never accepts a file: one keyframe must decode with its config."""
    path = make_h264(tmp_path / "v.mp4")
    data = bytearray(path.read_bytes())
    at = data.index(b"avcC") + 4
    data[at + 6 : at + 40] = bytes(34)  # the SPS/PPS zeroed
    path.write_bytes(bytes(data))
    assert _index_of(path) is not None  # the table itself is fine
    assert probe_mod._from_index(path, path.stat().st_size) is None
    try:
        expected: MediaInfo | str = _demuxed(path, monkeypatch)
    except InvalidMedia as exc:
        expected = str(exc)
    try:
        got: MediaInfo | str = probe_mod.probe(path)
    except InvalidMedia as exc:
        got = str(exc)
    assert got == expected


def test_a_plain_files_table_is_compact_and_reads_like_a_tuple(tmp_path: Path) -> None:
    # a clip holds every recording's table while it streams: arrays, not 5-tuples of ints
    import tracemalloc

    from camvault import mp4box
    from camvault.mp4track import Sample, SampleTable, read_moov

    path = make_h264(tmp_path / "t.mp4", seconds=4.0, fps=15, gop=30, faststart=True)
    with path.open("rb") as f:
        moov = next(b for b in mp4box.walk(f, path.stat().st_size) if b.kind == b"moov")
        f.seek(moov.offset + moov.header)
        table = read_moov(f.read(moov.size - moov.header)).samples
    assert isinstance(table, SampleTable) and len(table) == 60
    rows = list(table)
    assert rows == [table[i] for i in range(len(table))] and table == rows
    assert table[-1] == rows[-1] and table[2:4] == rows[2:4]
    assert all(isinstance(r, Sample) for r in rows) and rows[0].sync and not rows[1].sync
    assert rows[1].dts == rows[0].dts + rows[0].duration

    n = 100_000  # ~1 h 50 min at 15 fps
    offsets, sizes, dts = range(10**9, 10**9 + n * 5000, 5000), [5000] * n, range(0, n * 1024, 1024)
    tracemalloc.start()
    try:
        big = SampleTable(offsets, sizes, dts, [1024] * n, [k % 30 == 0 for k in range(n)])
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(big) == n and big[n - 1] == Sample(offsets[-1], 5000, dts[-1], 1024, False)
    assert held < 40 * n, held / n  # bytes a sample (as tuples of ints: ~180)

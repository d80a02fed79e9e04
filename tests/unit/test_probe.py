"""probe(): real files made by the bundled ffmpeg, good and bad."""

from __future__ import annotations

import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import camvault.probe as probe_mod
from camvault.errors import InvalidMedia
from camvault.models import MediaInfo
from camvault.probe import probe, start_from_filename
from tests.media import (
    FFMPEG,
    make_audio_only,
    make_empty,
    make_h264,
    make_h265,
    make_mjpeg,
    make_random_bytes,
    make_truncated,
)

MP4 = "mov,mp4,m4a,3gp,3g2,mj2"
CONTAINERS = {".mp4": MP4, ".mov": MP4, ".mkv": "matroska,webm", ".ts": "mpegts"}
STAMP = datetime(2026, 11, 26, 13, 4, 55, tzinfo=UTC)


def _no_framing_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Disable the header checks so the demux-level checks must catch the damage alone."""
    monkeypatch.setattr(probe_mod, "_framing", lambda path, size: None)


# ------------------------------------------------------------------------------ valid files


@pytest.mark.parametrize(
    ("suffix", "size", "seconds", "fps", "gop"),
    [
        (".mp4", "320x240", 2.0, 15, None),
        (".mp4", "640x360", 3.0, 25, 50),
        (".mov", "176x144", 1.0, 10, None),
        (".mkv", "1280x720", 1.0, 30, None),
        (".mkv", "320x240", 4.0, 12, 24),
        (".ts", "320x240", 2.0, 15, None),
        (".ts", "640x480", 3.0, 20, 40),
    ],
)
def test_h264_is_described(
    tmp_path: Path, suffix: str, size: str, seconds: float, fps: int, gop: int | None
) -> None:
    path = make_h264(tmp_path / f"v{suffix}", seconds=seconds, size=size, fps=fps, gop=gop)
    info = probe(path)
    width, height = (int(x) for x in size.split("x"))
    assert info.codec == "h264"
    assert (info.width, info.height) == (width, height)
    assert info.duration_seconds == pytest.approx(seconds, abs=1 / fps)
    assert info.frame_count == round(seconds * fps)
    assert info.container == CONTAINERS[suffix]
    assert info.has_audio is False
    assert info.creation_time is None


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_h265_is_accepted_as_hevc(tmp_path: Path, suffix: str) -> None:
    info = probe(make_h265(tmp_path / f"v{suffix}", seconds=2.0, size="320x240", fps=15))
    assert info.codec == "hevc"
    assert (info.width, info.height, info.frame_count) == (320, 240, 30)
    assert info.duration_seconds == pytest.approx(2.0, abs=1 / 15)


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".ts"])
def test_audio_track_is_reported(tmp_path: Path, suffix: str) -> None:
    info = probe(make_h264(tmp_path / f"v{suffix}", audio=True))
    assert info.has_audio is True
    assert info.codec == "h264"
    # the measured duration is the video's, not the (slightly longer) AAC track's
    assert info.duration_seconds == pytest.approx(2.0, abs=1 / 15)


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_creation_time_tag_is_parsed_as_utc(tmp_path: Path, suffix: str) -> None:
    info = probe(make_h264(tmp_path / f"v{suffix}", creation_time=STAMP))
    assert info.creation_time == STAMP
    assert info.creation_time is not None and info.creation_time.utcoffset() is not None


def test_creation_time_epoch_zero_is_ignored(tmp_path: Path) -> None:
    info = probe(make_h264(tmp_path / "v.mp4", creation_time=datetime(1970, 1, 1, tzinfo=UTC)))
    assert info.creation_time is None


def test_creation_time_naive_and_offset_forms() -> None:
    ct = probe_mod._creation_time
    assert ct({"creation_time": "2026-11-26 13:04:55"}) == STAMP
    assert ct({"creation_time": "2026-11-26T14:04:55+01:00"}) == STAMP
    assert ct({"creation_time": "garbage"}, {"creation_time": "2026-11-26T13:04:55Z"}) == STAMP
    assert ct({"creation_time": "1904-01-01T00:00:00Z"}) is None
    assert ct({}, None) is None


def test_non_faststart_mp4_is_fine(tmp_path: Path) -> None:
    info = probe(make_h264(tmp_path / "v.mp4", faststart=False))
    assert info.codec == "h264" and info.frame_count == 30


def test_edit_list_preroll_is_not_counted(tmp_path: Path) -> None:
    """A stream copy cut at 0.5 s keeps the GOP's first frames as hidden pre-roll."""
    src = make_h264(tmp_path / "src.mp4", seconds=3.0, fps=15, gop=30)
    dst = tmp_path / "trimmed.mp4"
    cmd = [FFMPEG, "-loglevel", "error", "-y", "-ss", "0.5", "-i", str(src), "-c", "copy"]
    subprocess.run([*cmd, str(dst)], check=True, capture_output=True)
    info = probe(dst)
    assert info.duration_seconds == pytest.approx(2.5, abs=1 / 15)
    assert info.frame_count == pytest.approx(2.5 * 15, abs=1)


def test_returns_media_info(tmp_path: Path) -> None:
    assert isinstance(probe(make_h264(tmp_path / "v.mp4")), MediaInfo)


# ---------------------------------------------------------------------------- bad input


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match=r"^empty file \(0 bytes\)$"):
        probe(make_empty(tmp_path / "e.mp4"))


def test_random_bytes_named_mp4(tmp_path: Path) -> None:
    path = make_random_bytes(tmp_path / "r.mp4", 64 * 1024, seed=7)
    with pytest.raises(InvalidMedia, match=r"^not a video container: "):
        probe(path)


def test_missing_file_is_an_os_error_not_bad_media(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "nope.mp4")


def test_mjpeg_is_rejected_by_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match=r"^video codec mjpeg is not H\.264/H\.265$"):
        probe(make_mjpeg(tmp_path / "m.mp4"))


def test_audio_only_has_no_video_stream(tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match=r"^no video stream$"):
        probe(make_audio_only(tmp_path / "a.mp4"))


def test_raw_h264_elementary_stream_is_not_an_accepted_container(tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match=r"^container h264 is not MP4/MOV, Matroska or MPEG-TS"):
        probe(make_h264(tmp_path / "v.h264"))


@pytest.mark.parametrize("fraction", [0.05, 0.6, 0.95, 0.999])
@pytest.mark.parametrize(
    ("suffix", "faststart"),
    [(".mp4", True), (".mp4", False), (".mov", True), (".mkv", True), (".ts", True)],
)
def test_truncated_files_are_rejected(
    tmp_path: Path, suffix: str, faststart: bool, fraction: float
) -> None:
    src = make_h264(tmp_path / f"src{suffix}", seconds=3.0, audio=True, faststart=faststart)
    cut = make_truncated(src, tmp_path / f"cut{suffix}", fraction)
    if suffix == ".ts" and cut.stat().st_size % 188 == 0:
        # a TS cut exactly between packets is undetectable (see the test further down)
        make_truncated(src, cut, (cut.stat().st_size - 1) / src.stat().st_size)
    with pytest.raises(InvalidMedia, match=r"^truncated: "):
        probe(cut)


def test_non_faststart_cut_names_the_overrunning_box(tmp_path: Path) -> None:
    src = make_h264(tmp_path / "src.mp4", faststart=False)
    cut = make_truncated(src, tmp_path / "cut.mp4", 0.6)
    with pytest.raises(InvalidMedia, match=r"MP4 box 'mdat' at byte \d+ needs \d+ bytes"):
        probe(cut)


def test_mp4_without_moov_box(tmp_path: Path) -> None:
    src = make_h264(tmp_path / "src.mp4", faststart=False).read_bytes()
    # keep every top-level box but moov (a recorder killed before it wrote its trailer)
    kept, pos = b"", 0
    while pos < len(src):
        size, kind = int.from_bytes(src[pos : pos + 4], "big"), src[pos + 4 : pos + 8]
        if kind != b"moov":
            kept += src[pos : pos + size]
        pos += size
    assert b"mdat" in kept and len(kept) < len(src)
    path = tmp_path / "nomoov.mp4"
    path.write_bytes(kept)
    with pytest.raises(InvalidMedia, match=r"no 'moov' index box"):
        probe(path)


# --- the demux-level checks stand on their own (second line behind the header checks)


def test_demux_catches_faststart_cut_mid_packet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_framing_check(monkeypatch)
    cut = make_truncated(make_h264(tmp_path / "src.mp4"), tmp_path / "cut.mp4", 0.6)
    with pytest.raises(InvalidMedia, match=r"^truncated: the last packet is incomplete"):
        probe(cut)


def test_demux_catches_faststart_cut_on_packet_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_framing_check(monkeypatch)
    src = make_h264(tmp_path / "src.mp4")
    with av.open(str(src)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
        pos = packets[14].pos
        assert pos is not None
        end_of_15th = pos + packets[14].size
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(src.read_bytes()[:end_of_15th])
    with pytest.raises(InvalidMedia, match=r"^truncated: 15 of 30 indexed video frames"):
        probe(cut)


def test_demux_catches_cut_matroska_by_declared_duration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_framing_check(monkeypatch)
    cut = make_truncated(make_h264(tmp_path / "src.mkv"), tmp_path / "cut.mkv", 0.6)
    with pytest.raises(InvalidMedia, match=r"^truncated: packets cover [\d.]+ s but"):
        probe(cut)


def test_demux_non_faststart_cut_cannot_be_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_framing_check(monkeypatch)
    src = make_h264(tmp_path / "src.mp4", faststart=False)
    cut = make_truncated(src, tmp_path / "cut.mp4", 0.6)
    with pytest.raises(InvalidMedia, match=r"^not a video container: "):
        probe(cut)


def test_ts_cut_on_a_packet_boundary_is_a_shorter_valid_video(tmp_path: Path) -> None:
    """MPEG-TS has no index: cut on a 188-byte boundary it is simply shorter (documented)."""
    data = make_h264(tmp_path / "src.ts", seconds=2.0).read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: (len(data) // 2 // 188) * 188])
    info = probe(cut)
    assert 0 < info.duration_seconds < 1.9
    assert info.frame_count < 30


# ------------------------------------------------------------------------- file names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("lobby-1_20261126T130455Z.mp4", STAMP),
        ("cam20261126T130455Z.mp4", STAMP),
        ("lobby-1_20261126T130455.mp4", STAMP),
        ("20261126T130455.mkv", STAMP),
        ("ch01_20261126_130455.mp4", STAMP),
        ("20261126_130455.ts", STAMP),
        ("2026-11-26_13-04-55.mp4", STAMP),
        ("front door 2026-11-26 13-04-55.mp4", STAMP),
        ("x_2026-11-26T13:04:55Z.mp4", STAMP),
        ("/spool/cam/2026/11/26/cam_20261126T130455Z.mp4", STAMP),
        ("demo_20261231T235959Z.mp4", datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)),
        # the leftmost valid stamp wins (start_end names)
        ("cam_20261126T130455Z_20261126T131000Z.mp4", STAMP),
        # an invalid date is skipped, a later valid one still counts
        ("cam_20261399T130455Z_20261126T130455Z.mp4", STAMP),
        ("video.mp4", None),
        ("", None),
        ("cam_20261126.mp4", None),
        ("cam_20261126T1304.mp4", None),
        ("cam_20261326T130455Z.mp4", None),  # month 13
        ("cam_20260230T130455Z.mp4", None),  # 30 February
        ("cam_20261126T250455Z.mp4", None),  # hour 25
        ("cam_120261126T130455Z.mp4", None),  # part of a longer digit run
        ("cam_20261126T1304551.mp4", None),
        ("1732626295.mp4", None),  # epoch seconds are not a documented form
    ],
)
def test_start_from_filename(name: str, expected: datetime | None) -> None:
    got = start_from_filename(name)
    assert got == expected
    if got is not None:
        assert got.tzinfo is UTC


# --------------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4096), suffix=st.sampled_from([".mp4", ".mkv", ".ts", ".bin"]))
def test_random_bytes_only_ever_raise_invalid_media(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"x{suffix}"
        path.write_bytes(data)
        try:
            probe(path)
        except InvalidMedia as exc:
            assert str(exc) and "\n" not in str(exc)


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    d = tmp_path_factory.mktemp("seeds")
    return [
        make_h264(d / "a.mp4", seconds=1.0, audio=True).read_bytes(),
        make_h264(d / "b.mkv", seconds=1.0).read_bytes(),
        make_h264(d / "c.ts", seconds=1.0).read_bytes(),
        make_h265(d / "d.mp4", seconds=1.0).read_bytes(),
    ]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    which=st.integers(0, 3),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=30),
    head_edits=st.lists(st.tuples(st.integers(0, 511), st.integers(0, 255)), max_size=4),
    keep=st.floats(0.0, 1.0),
)
def test_damaged_real_files_only_ever_raise_invalid_media(
    seed_files: list[bytes],
    which: int,
    edits: list[tuple[float, int]],
    head_edits: list[tuple[int, int]],
    keep: float,
) -> None:
    data = bytearray(seed_files[which])
    for where, value in edits:
        data[int(where * len(data))] = value
    for offset, value in head_edits:  # container headers live at the start
        data[offset] = value
    data = data[: max(1, int(len(data) * keep))]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("x.ts" if which == 2 else "x.mkv" if which == 1 else "x.mp4")
        path.write_bytes(bytes(data))
        try:
            info = probe(path)
        except InvalidMedia as exc:
            assert str(exc) and "\n" not in str(exc)
        else:
            assert info.codec in {"h264", "hevc"}
            assert info.frame_count > 0 and info.duration_seconds > 0

"""The spliced clip (``export.splice``): assembled from the recordings' samples through
ranged reads, it must hold exactly the frames the plan says — each source frame's decoded
picture at its place on the clip's timeline — and anything it does not vouch for must be
left to ffmpeg before a byte is sent."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import av
import pytest

from camvault.errors import StorageUnavailable
from camvault.export import splice
from camvault.export.clip import CUT_AFTER, CUT_BEFORE, ClipPlan, Source
from camvault.export.fmp4 import Out, fragment_header, init_segment
from camvault.export.jobs import plan_sources
from camvault.export.media import stream_fragments
from camvault.export.streamplan import plan_stream
from camvault.mp4track import fragment_samples, read_moov
from tests.media import FFMPEG, make_h264, make_h265
from tests.splicing import T0, Store, audio_packets, box_payload, expected_audio, rounded
from tests.splicing import decode as _decode
from tests.splicing import expected as _expected
from tests.splicing import ffmpeg as _ffmpeg
from tests.splicing import recorder as _recorder
from tests.splicing import source as _source

PART = 64 * 1024  # small parts: samples and boxes straddle GET boundaries


def _plan(sources: list[Source], start: float, end: float, allowed: float) -> ClipPlan:
    def at(s: float) -> datetime:
        return T0 + timedelta(seconds=s)

    return plan_sources(sources, at(start), at(end), allowed_start=at(allowed))


def _spliced(store: Store, plan: ClipPlan, *, strict: bool = False) -> bytes:
    sp = splice.prepare(store, plan, strict=strict, part=PART, chunk=100_000)
    assert sp is not None
    return b"".join(bytes(c) for c in sp.chunks())


def _two_plain(tmp: Path, store: Store, *, faststart: bool, gap: float = 0.0) -> list[Source]:
    a = make_h264(tmp / "a.mp4", seconds=4.0, gop=30, faststart=faststart)
    b = make_h264(tmp / "b.mp4", seconds=4.0, gop=30, faststart=faststart)
    return [
        _source(store, 1, a, T0, 4.0),
        _source(store, 2, b, T0 + timedelta(seconds=4.0 + gap), 4.0),
    ]


def _h265(tmp: Path, store: Store) -> list[Source]:
    path = make_h265(tmp / "h.mp4", seconds=4.0, gop=30)
    return [_source(store, 1, path, T0, 4.0)]


CASES: dict[str, tuple[Callable[[Path, Store], list[Source]], float, float, float, str]] = {
    # name: (sources, start, end, allowed start, the cut the plan makes)
    "faststart, cut mid-GOP, keyframe before": (
        lambda t, s: _two_plain(t, s, faststart=True),
        3.0,
        6.5,
        0.0,
        CUT_BEFORE,
    ),
    "faststart, cut mid-GOP, keyframe after (strict)": (
        lambda t, s: _two_plain(t, s, faststart=True),
        1.1,
        6.5,
        1.1,
        CUT_AFTER,
    ),
    "h265, moov first": (_h265, 2.5, 3.9, 0.0, CUT_BEFORE),
    "moov at the end": (lambda t, s: _two_plain(t, s, faststart=False), 0.5, 7.9, 0.0, CUT_BEFORE),
    "gap between sources": (
        lambda t, s: _two_plain(t, s, faststart=True, gap=2.0),
        1.5,
        9.0,
        1.5,
        CUT_AFTER,
    ),
    "recorder segments, keyframe before": (
        lambda t, s: [
            _source(s, n, p, T0 + timedelta(seconds=4 * n), 4.0) for n, p in enumerate(_recorder(t))
        ],
        3.4,
        7.2,
        0.0,
        CUT_BEFORE,
    ),
    "recorder segments, keyframe after": (
        lambda t, s: [
            _source(s, n, p, T0 + timedelta(seconds=4 * n), 4.0) for n, p in enumerate(_recorder(t))
        ],
        0.7,
        5.1,
        0.7,
        CUT_AFTER,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_spliced_frames_are_the_plans_frames(case: str, tmp_path: Path) -> None:
    make, start, end, allowed, cut = CASES[case]
    store = Store()
    plan = _plan(make(tmp_path, store), start, end, allowed)
    assert plan.cut == cut
    got, audio = _decode(_spliced(store, plan, strict=cut == CUT_AFTER))
    want = _expected(plan)
    assert got == want
    assert audio == 0 and len(want) > 20
    if "gap" in case:  # the gap stays a gap: 2 s with no frame in it
        assert any(b - a > 2.0 for (a, _), (b, _) in pairwise(got))


@pytest.mark.parametrize("layout", ["recorder", "plain with a gap"])
def test_spliced_clip_matches_the_ffmpeg_route(layout: str, tmp_path: Path) -> None:
    """The same frames (pictures and times) as ffmpeg's concat + stream copy, and the same
    packet timing: a sample lasts until the next starts, across a gap too."""
    store = Store()
    if layout == "recorder":
        sources = [
            _source(store, n, p, T0 + timedelta(seconds=4 * n), 4.0)
            for n, p in enumerate(_recorder(tmp_path))
        ]
    else:
        sources = _two_plain(tmp_path, store, faststart=True, gap=2.0)
    plan = _plan(sources, 2.9, 9.5, 0.0)

    async def collect(spliced: splice.Splice | None) -> bytes:
        parts = stream_fragments(
            FFMPEG, plan, tmp_path / "s.ffconcat", strict=False, spliced=spliced
        )
        return b"".join([bytes(c) async for c in parts])

    ffmpeg = asyncio.run(collect(None))
    spliced = asyncio.run(collect(splice.prepare(store, plan, strict=False, part=PART)))
    assert _decode(spliced)[0] == _decode(ffmpeg)[0]
    assert _packets(spliced) == _packets(ffmpeg)


def _packets(data: bytes) -> list[tuple[float, float, bool]]:
    with av.open(io.BytesIO(data)) as c:
        vs = c.streams.video[0]
        tb = vs.time_base
        return [
            (float(p.pts * tb), float(p.duration * tb), p.is_keyframe)
            for p in c.demux(vs)
            if p.size
        ]


def test_different_codec_settings_fall_back(tmp_path: Path) -> None:
    store = Store()
    a = make_h264(tmp_path / "a.mp4", seconds=2.0)
    b = make_h264(tmp_path / "b.mp4", seconds=2.0, size="640x360")
    sources = [_source(store, 1, a, T0, 2.0), _source(store, 2, b, T0 + timedelta(seconds=2), 2.0)]
    plan = _plan(sources, 0.0, 4.0, 0.0)
    assert splice.prepare(store, plan, strict=True) is None
    same = [sources[0], replace(sources[1], key="a.mp4")]  # the same file twice: fine
    assert splice.prepare(store, _plan(same, 0.0, 4.0, 0.0), strict=True) is not None


def _audio_sources(layout: str, tmp: Path, store: Store) -> list[Source]:
    if layout == "recorder":
        return [
            _source(store, n, p, T0 + timedelta(seconds=4 * n), 4.0)
            for n, p in enumerate(_recorder(tmp, audio=True))
        ]
    a = make_h264(tmp / "a.mp4", seconds=4.0, gop=30, audio=True)
    b = make_h264(tmp / "b.mp4", seconds=4.0, gop=30, audio=True)
    gap = 2.0 if "gap" in layout else 0.0
    return [
        _source(store, 1, a, T0, 4.0),
        _source(store, 2, b, T0 + timedelta(seconds=4.0 + gap), 4.0),
    ]


AUDIO_LAYOUTS = ["recorder", "faststart", "faststart with a gap"]


@pytest.mark.parametrize("layout", AUDIO_LAYOUTS)
def test_kept_audio_is_spliced_and_strict_drops_it(layout: str, tmp_path: Path) -> None:
    """A keyframe-before cut keeps the AAC track (ffmpeg maps it): spliced, each audio
    packet of the plan's span — from its keyframe to before its outpoint — at its place
    on the clip's timeline, its bytes as stored. A strict clip has none."""
    store = Store()
    sources = _audio_sources(layout, tmp_path, store)
    plan = _plan(sources, 1.0, 7.5, 0.0)
    assert plan.cut == CUT_BEFORE and plan.entries[0].inpoint is not None
    data = _spliced(store, plan)
    got, audio = _decode(data)
    assert got == _expected(plan) and audio == 1
    codec, packets, _ = audio_packets(data)
    want = expected_audio(plan)
    assert codec == "aac" and rounded(packets) == want and len(want) > 200
    got, audio = _decode(_spliced(store, plan, strict=True))
    assert audio == 0 and got == _expected(plan)


@pytest.mark.parametrize("layout", AUDIO_LAYOUTS)
def test_spliced_audio_matches_the_ffmpeg_route(layout: str, tmp_path: Path) -> None:
    """ffmpeg's concat + stream copy of the same plan: the same audio packets, bytes and
    spacing, but for a packet or two at the edges (its seek lets the one holding the
    keyframe's time through, which shifts its whole timeline by that packet's lead).
    The clip ends on a source fragment's edge: mid-fragment, ffmpeg's concat stops at the
    first video packet past the outpoint, before that fragment's audio (stored after its
    video) is read — the splice keeps the audio up to the outpoint, as the video."""
    store = Store()
    sources = _audio_sources(layout, tmp_path, store)
    plan = _plan(sources, 2.9, 7.0, 0.0)

    async def collect(spliced: splice.Splice | None) -> bytes:
        parts = stream_fragments(
            FFMPEG, plan, tmp_path / "s.ffconcat", strict=False, spliced=spliced
        )
        return b"".join([bytes(c) async for c in parts])

    sp = splice.prepare(store, plan, strict=False, part=PART)
    assert sp is not None and sp.assembly == "splice"
    _, mine, _ = audio_packets(asyncio.run(collect(sp)))
    _, theirs, _ = audio_packets(asyncio.run(collect(None)))
    # each of ours in theirs, in order: ffmpeg's extra packets lie at the entries' edges
    # (the one before the keyframe; a plain file's priming packet, which we leave out)
    at, skips, shifts = 0, [], set()
    for t, payload in mine:
        k = next(k for k in range(at, at + 3) if theirs[k][1] == payload)
        skips.append(k - at)
        shifts.add(round(theirs[k][0] - t, 3))
        at = k + 1
    assert len(shifts) == 1 and shifts <= {0.0, 0.016}  # one timeline, offset by the lead
    assert sum(1 for n in skips if n) <= len(plan.entries) and len(theirs) - at <= 2
    assert len(mine) > 100


def _tone(path: Path, codec: str | None, rate: int = 48000, tracks: int = 1) -> Path:
    audio = ("-an",) if codec is None else ("-c:a", codec)
    _ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15:duration=4"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}:duration=4"),
        *("-map", "0:v", *(["-map", "1:a"] * tracks)),
        *("-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", "30"),
        *("-pix_fmt", "yuv420p", *audio, "-movflags", "+faststart"),
        str(path),
    )
    return path


FALLBACKS = {
    # case: (first source's audio, second's: codec, sample rate, tracks)
    "AC-3": (("ac3", 48000, 1), ("ac3", 48000, 1)),
    "MP2 (an mp4a entry too)": (("mp2", 48000, 1), ("mp2", 48000, 1)),
    "AAC at another rate": (("aac", 48000, 1), ("aac", 44100, 1)),
    "audio in one only": (("aac", 48000, 1), (None, 48000, 1)),
    "two AAC tracks (ffmpeg keeps both)": (("aac", 48000, 2), ("aac", 48000, 2)),
    "the same AAC track (spliced)": (("aac", 48000, 1), ("aac", 48000, 1)),
}


@pytest.mark.parametrize("case", FALLBACKS)
def test_audio_the_splice_cannot_copy_falls_back(case: str, tmp_path: Path) -> None:
    """Audio ffmpeg keeps but one init segment cannot carry: ffmpeg cuts the clip; a
    strict one (no audio) is still spliced."""
    store = Store()
    first, second = (
        _tone(tmp_path / f"{n}.mp4", *audio) for n, audio in enumerate(FALLBACKS[case])
    )
    sources = [
        _source(store, 1, first, T0, 4.0),
        _source(store, 2, second, T0 + timedelta(seconds=4.0), 4.0),
    ]
    plan = _plan(sources, 1.0, 7.5, 0.0)
    assert plan.cut == CUT_BEFORE
    kept = splice.prepare(store, plan, strict=False)
    assert (kept is not None) == case.endswith("(spliced)")
    got, audio = _decode(_spliced(store, plan, strict=True))
    assert audio == 0 and got == _expected(plan)


def test_not_vouched_for_falls_back(tmp_path: Path) -> None:
    """B-frames (composition offsets): the index reader does not vouch for them."""
    store = Store()
    path = tmp_path / "b.mp4"
    _ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15:duration=2"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-pix_fmt", "yuv420p"),
        str(path),
    )
    plan = _plan([_source(store, 1, path, T0, 2.0)], 0.0, 2.0, 0.0)
    assert splice.prepare(store, plan, strict=True) is None


@pytest.mark.parametrize("layout", ["faststart", "recorder"])
def test_a_failed_read_mid_stream_raises(layout: str, tmp_path: Path) -> None:
    store = Store()
    if layout == "faststart":
        sources = _two_plain(tmp_path, store, faststart=True)
    else:
        sources = [
            _source(store, n, p, T0 + timedelta(seconds=4 * n), 4.0)
            for n, p in enumerate(_recorder(tmp_path))
        ]
    plan = _plan(sources, 0.0, 8.0, 0.0)
    sp = splice.prepare(store, plan, strict=True, part=PART, chunk=10_000)
    assert sp is not None
    store.fail_after = store.reads + 3
    got = 0
    with pytest.raises(StorageUnavailable, match="boom"):
        for c in sp.chunks():
            got += len(c)
    assert got > 0  # it failed mid-stream, after sending part of the clip


def test_consumer_gone_stops_the_reads(tmp_path: Path) -> None:
    """A client that leaves after the first chunk: the splice is closed, its GETs stop
    (at most the one already running ahead completes)."""
    store = Store()
    plan = _plan(_two_plain(tmp_path, store, faststart=True), 0.0, 8.0, 0.0)
    part = 16 * 1024
    whole = Store()
    whole.objects = store.objects
    full = splice.prepare(whole, plan, strict=True, part=part)
    assert full is not None
    assert sum(len(c) for c in full.chunks()) > 0
    sp = splice.prepare(store, plan, strict=True, part=part, chunk=10_000)

    async def first_chunk_only() -> int:
        agen = stream_fragments(FFMPEG, plan, tmp_path / "s.ffconcat", strict=True, spliced=sp)
        async for _ in agen:
            break
        await agen.aclose()
        return store.reads

    at_close = asyncio.run(first_chunk_only())
    assert store.reads <= at_close + 1 < whole.reads // 2


@pytest.mark.parametrize("layout", ["faststart", "moov at the end", "recorder"])
def test_the_plan_from_the_indexes_is_the_probes_plan(layout: str, tmp_path: Path) -> None:
    """plan_stream's origins and keyframes (from the sample tables, no PyAV probe for a
    plain file) make the very plan the PyAV probes make."""
    store = Store()
    if layout == "recorder":
        sources = [
            _source(store, n, p, T0 + timedelta(seconds=4 * n), 4.0)
            for n, p in enumerate(_recorder(tmp_path))
        ]
    else:
        sources = _two_plain(tmp_path, store, faststart=layout == "faststart")
    end = T0 + timedelta(seconds=7.5)
    for start, allowed in [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.9, 0.0), (0.4, 0.4)]:
        want = _plan(sources, start, 7.5, allowed)
        got, spliced = plan_stream(
            store, sources, T0 + timedelta(seconds=start), end,
            allowed_start=T0 + timedelta(seconds=allowed), strict=True,
        )  # fmt: skip
        assert got == want and spliced is not None
    assert plan_stream(object(), sources, T0, end, allowed_start=T0, strict=True)[1] is None


def test_writer_boxes_read_back(tmp_path: Path) -> None:
    """The init segment and a fragment header, read back with the index reader."""
    src = read_moov(_moov(make_h264(tmp_path / "a.mp4")))
    init = init_segment(src.entry, src.timescale, src.width, src.height)
    track = read_moov(box_payload(init, b"moov"))
    assert (track.entry, track.timescale, track.width, track.height) == (
        src.entry,
        src.timescale,
        320,
        240,
    )
    assert track.fragmented and not track.samples
    placed = [Out(100, 5000, 512, True), Out(7, 5512, 512, False), Out(30, 6024, 900, False)]
    frag = fragment_header(3, placed)
    moof = box_payload(frag, b"moof")
    got = fragment_samples(moof, 0, track)
    data = len(moof) + 8 + 8  # moof header, then the mdat header
    assert [tuple(s) for s in got] == [
        (data, 100, 5000, 512, True),
        (data + 100, 7, 5512, 512, False),
        (data + 107, 30, 6024, 900, False),
    ]
    assert frag[-8:] == (8 + 137).to_bytes(4, "big") + b"mdat"


def _moov(path: Path) -> bytes:
    return box_payload(path.read_bytes(), b"moov")


def test_read_buffers_are_reused_across_parts_and_recordings(tmp_path: Path) -> None:
    # memory must not grow with the clip: a recording's buffers go back for the next
    # GETs (it once kept its last 4 MB part per recording: 48 MB at the peak of 1 h)
    part = 48 * 1024  # not the index reads' size: only the splice's GETs are counted
    store = Store()
    filled: dict[int, bytearray] = {}
    gets = [0]
    read = store.read_range

    def counting(key: str, offset: int, into: memoryview) -> tuple[int, int]:
        assert isinstance(into.obj, bytearray)
        if len(into.obj) == part:
            gets[0] += 1
            filled[id(into.obj)] = into.obj  # held: an id is not reused while we count
        return read(key, offset, into)

    store.read_range = counting  # type: ignore[method-assign]
    paths = _recorder(tmp_path, seconds=32.0)
    sources = [
        _source(store, n, p, T0 + timedelta(seconds=4 * n), 4.0) for n, p in enumerate(paths)
    ]
    assert len(sources) == 8
    plan = _plan(sources, 0.0, 32.0, 0.0)
    sp = splice.prepare(store, plan, strict=False, part=part, chunk=100_000)
    assert sp is not None
    got, _ = _decode(b"".join(bytes(c) for c in sp.chunks()))
    assert got == _expected(plan)
    assert gets[0] >= 8 * 3  # many GETs per recording …
    assert len(filled) <= 3, len(filled)  # … into a few buffers: current, one ahead, next

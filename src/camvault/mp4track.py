"""The one video track of an MP4/MOV as a sample table: each sample's byte offset, size,
decode time, duration and keyframe flag, read from the ``moov`` box (and, for a fragmented
file, from each ``moof``).

Two readers build on it: ``mp4index`` (the ingest probe's summary of a file) and
``export.splice`` (a clip assembled from the recordings' samples, no ffmpeg). Both vouch
only for the common case — one H.264/H.265 video track, no composition offsets (B-frames),
no edit list that hides or trims media — and raise ``ValueError`` (or ``struct.error`` and
friends on a broken table, see ``TABLE_ERRORS``) for anything else. A lone AAC audio
track is read too (``AudioTrack``: what the splice copies when the clip keeps audio);
any other audio is only noted (``has_audio``), never a reason to refuse the video.

Box layouts: ISO/IEC 14496-12 (mvhd, tkhd, mdhd, hdlr, stsd, stts, ctts, stsz, stsc,
stco/co64, stss, elst, mvex/trex/mehd, moof/tfhd/tfdt/trun), 14496-15 (avcC/hvcC) and
14496-1 (esds: the ES and decoder config descriptors).
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate, pairwise
from typing import NamedTuple, overload

__all__ = [
    "TABLE_ERRORS",
    "AudioTrack",
    "Sample",
    "SampleTable",
    "VideoTrack",
    "fragment_audio",
    "fragment_samples",
    "read_moov",
]

# what a broken or foreign table raises while it is read
TABLE_ERRORS = (struct.error, ValueError, IndexError, KeyError, ZeroDivisionError)

_CODECS = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc"}
_CONFIG_BOX = {"h264": b"avcC", "hevc": b"hvcC"}
_MAC_EPOCH_OFFSET = 2082844800  # 1904-01-01 → 1970-01-01, in seconds
_VISUAL_ENTRY = 8 + 78  # box header + VisualSampleEntry fields before its child boxes
_SOUND_ENTRY = 8 + 28  # box header + AudioSampleEntry (v0) fields before its child boxes
_NON_SYNC = 0x10000  # sample_is_non_sync_sample, in a sample's flags

Boxes = dict[bytes, list[tuple[int, int]]]


class Sample(NamedTuple):
    """One video sample: where its bytes are in the file, and its decode time and duration
    in the track's timescale."""

    offset: int
    size: int
    dts: int
    duration: int
    sync: bool


class SampleTable(Sequence[Sample]):
    """A plain file's samples kept as arrays, each ``Sample`` made when it is read: ~25
    bytes a sample instead of ~180 as tuples of ints. A clip holds the tables of all its
    recordings while it streams (4 h of a 30 fps camera: 432 000 samples, ~11 MB, not
    ~78 MB)."""

    __slots__ = ("_dts", "_duration", "_offset", "_size", "_sync")

    def __init__(
        self,
        offsets: Iterable[int],
        sizes: Iterable[int],
        dts: Iterable[int],
        durations: Iterable[int],
        sync: Iterable[bool],
    ) -> None:
        self._offset = array("q", offsets)
        self._size = array("q", sizes)
        self._dts = array("q", dts)
        self._duration = array("q", durations)
        self._sync = bytes(sync)
        lengths = {len(a) for a in (self._offset, self._size, self._dts, self._duration)}
        if lengths != {len(self._sync)}:
            raise ValueError("sample tables disagree")

    def __len__(self) -> int:
        return len(self._size)

    @overload
    def __getitem__(self, i: int) -> Sample: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Sample]: ...
    def __getitem__(self, i: int | slice) -> Sample | Sequence[Sample]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return Sample(
            self._offset[i], self._size[i], self._dts[i], self._duration[i], bool(self._sync[i])
        )

    def __iter__(self) -> Iterator[Sample]:
        sync = map(bool, self._sync)
        return map(Sample, self._offset, self._size, self._dts, self._duration, sync)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class AudioTrack:
    """The first audio track when it is AAC (``mp4a``) and plain enough to copy: its
    sample entry as stored, its samples (a plain file's; a fragmented one's come per
    ``moof``, ``defaults`` from its trex) and ``shift``: the edit list's media time (the
    encoder's priming), which the demuxer subtracts from every decode time."""

    timescale: int
    track_id: int
    entry: bytes
    samples: Sequence[Sample]
    defaults: tuple[int, int, int] | None
    shift: int


@dataclass(frozen=True, slots=True)
class VideoTrack:
    """The video track as the ``moov`` describes it. ``entry`` is the sample entry box as
    stored (avc1/hvc1 … with its avcC/hvcC), ``extradata`` the decoder configuration
    record in it. ``samples``: the whole table of a plain MP4; empty for a fragmented one
    (``defaults`` set: trex's duration, size, flags), whose samples come per ``moof``."""

    codec: str
    timescale: int
    track_id: int
    entry: bytes
    extradata: bytes
    width: int
    height: int
    has_audio: bool
    movie_created: datetime | None
    created: datetime | None
    samples: Sequence[Sample]  # a plain file's (``SampleTable``); empty when fragmented
    defaults: tuple[int, int, int] | None
    audio: AudioTrack | None = None  # the AAC track a clip can copy (``has_audio``: any)

    @property
    def fragmented(self) -> bool:
        return self.defaults is not None


def read_moov(body: bytes) -> VideoTrack:
    """The video track of the movie whose ``moov`` payload is ``body``."""
    kids = children(body, 0, len(body))
    movie_created, movie_scale, declared = _mvhd(body, one(kids, b"mvhd"))
    video: list[tuple[int, int]] = []
    sound: list[tuple[int, int]] = []
    for trak in kids.get(b"trak", []):
        media = one(children(body, *trak), b"mdia")
        hdlr = one(children(body, *media), b"hdlr")[0]
        handler = bytes(body[hdlr + 8 : hdlr + 12])
        if handler == b"soun":
            sound.append(trak)
        elif handler == b"vide":
            video.append(trak)
    if len(video) != 1:
        raise ValueError("not one video track")
    tkids = children(body, *video[0])
    mdia = children(body, *one(tkids, b"mdia"))
    stbl = children(body, *one(children(body, *one(mdia, b"minf")), b"stbl"))
    if b"ctts" in stbl:  # B-frames: presentation order differs, the demuxer works it out
        raise ValueError("composition offsets")
    timescale, created = _mdhd(body, one(mdia, b"mdhd"))
    codec, entry, extradata = _stsd(body, one(stbl, b"stsd"))
    version, pos = full(body, one(tkids, b"tkhd"))
    (track_id,) = struct.unpack_from(">I", body, pos + (16 if version == 1 else 8))
    width, height = struct.unpack_from(">HH", entry, 32)
    samples: Sequence[Sample] = ()
    defaults = None
    if b"mvex" in kids:
        mvex = children(body, *one(kids, b"mvex"))
        # a declared length (mvhd, mehd) is what the demuxer holds the fragments to — a
        # file cut between two whole fragments is caught only that way: its job
        if declared or b"mehd" in mvex:
            raise ValueError("fragmented file with a declared duration")
        if b"edts" in tkids:
            raise ValueError("edit list in a fragmented file")
        if _stsz(body, one(stbl, b"stsz")):
            raise ValueError("samples in the moov as well as in fragments")
        trex = next((t for t in mvex.get(b"trex", []) if _u32(body, t[0] + 4) == track_id), None)
        if trex is None:
            raise ValueError("no trex for the video track")
        defaults = struct.unpack_from(">III", body, trex[0] + 12)  # duration, size, flags
    else:
        samples = _table(body, stbl)
        if b"edts" in tkids:
            total = samples[-1].dts + samples[-1].duration
            _check_edits(body, one(tkids, b"edts"), total * movie_scale, timescale)
    return VideoTrack(
        codec=codec,
        timescale=timescale,
        track_id=track_id,
        entry=entry,
        extradata=extradata,
        width=width,
        height=height,
        has_audio=bool(sound),
        movie_created=movie_created,
        created=created,
        samples=samples,
        defaults=defaults,
        # ffmpeg keeps every audio track (``-map 0:a?``): only a lone one is copied
        audio=_audio(body, sound[0], kids) if len(sound) == 1 else None,
    )


def _audio(body: bytes, trak: tuple[int, int], moov: Boxes) -> AudioTrack | None:
    """The audio track ``trak`` when it is AAC and plain (no composition offsets, an edit
    list that only skips the priming); else None — a clip that keeps the audio is then
    ffmpeg's, but the video is still read (the ingest probe, strict clips)."""
    try:
        tkids = children(body, *trak)
        mdia = children(body, *one(tkids, b"mdia"))
        stbl = children(body, *one(children(body, *one(mdia, b"minf")), b"stbl"))
        if b"ctts" in stbl:
            return None
        timescale, _ = _mdhd(body, one(mdia, b"mdhd"))
        _, pos = full(body, one(stbl, b"stsd"))
        count, n, kind = struct.unpack_from(">II4s", body, pos)
        if count != 1 or kind != b"mp4a" or pos + 4 + n > one(stbl, b"stsd")[1]:
            return None
        entry = bytes(body[pos + 4 : pos + 4 + n])
        if not _is_aac(entry):  # mp4a holds MP3 and MP2 too
            return None
        version, tpos = full(body, one(tkids, b"tkhd"))
        (track_id,) = struct.unpack_from(">I", body, tpos + (16 if version == 1 else 8))
        shift = 0
        if b"edts" in tkids:
            shift = _audio_edit(body, one(tkids, b"edts"))
        if b"mvex" in moov:
            trex = children(body, *one(moov, b"mvex")).get(b"trex", [])
            row = next((t for t in trex if _u32(body, t[0] + 4) == track_id), None)
            if row is None or shift or _stsz(body, one(stbl, b"stsz")):
                return None
            defaults = struct.unpack_from(">III", body, row[0] + 12)
            return AudioTrack(timescale, track_id, entry, (), defaults, 0)
        return AudioTrack(timescale, track_id, entry, _table(body, stbl), None, shift)
    except TABLE_ERRORS:
        return None


def _is_aac(entry: bytes) -> bool:
    """Whether an ``mp4a`` sample entry (version 0, ISO) describes AAC: its esds's decoder
    config says object type 0x40 (ISO/IEC 14496-1 ES_Descriptor)."""
    if struct.unpack_from(">H", entry, 16)[0] != 0:  # QuickTime sound entry v1/v2
        return False
    esds = one(children(entry, _SOUND_ENTRY, len(entry)), b"esds")
    pos = esds[0] + 4
    if entry[pos] != 0x03:
        return False
    pos = _descriptor_body(entry, pos)
    flags = entry[pos + 2]
    pos += 3 + (2 if flags & 0x80 else 0) + (2 if flags & 0x20 else 0)
    if flags & 0x40:
        pos += 1 + entry[pos]
    if entry[pos] != 0x04:
        return False
    return entry[_descriptor_body(entry, pos)] == 0x40


def _descriptor_body(data: bytes, pos: int) -> int:
    """Where the descriptor whose tag is at ``pos`` has its payload (after its size,
    7 bits a byte, the high bit saying more follow)."""
    pos += 1
    for _ in range(4):
        pos += 1
        if not data[pos - 1] & 0x80:
            return pos
    raise ValueError("descriptor size")


def _audio_edit(body: bytes, edts: tuple[int, int]) -> int:
    """The media time an audio edit list starts at (the priming ffmpeg's AAC encoder
    writes); a list of more than one edit, or another rate, is not vouched for."""
    elst = one(children(body, *edts), b"elst")
    version, pos = full(body, elst)
    (count,) = struct.unpack_from(">I", body, pos)
    _, media_time, rate = struct.unpack_from(">QqI" if version == 1 else ">IiI", body, pos + 4)
    if count != 1 or media_time < 0 or rate != 1 << 16:
        raise ValueError("audio edit list")
    return int(media_time)


def _table(body: bytes, stbl: Boxes) -> SampleTable:
    deltas = _stts(body, one(stbl, b"stts"))
    sizes = _stsz(body, one(stbl, b"stsz"))
    if len(sizes) != len(deltas) or not sizes or min(deltas) <= 0:
        raise ValueError("sample tables disagree")
    starts = _sample_offsets(_chunk_offsets(body, stbl), _stsc(body, one(stbl, b"stsc")), sizes)
    keys = _stss(body, stbl.get(b"stss", [None])[0])
    sync = [not keys] * len(sizes)
    for k in keys:
        if not 1 <= k <= len(sizes):
            raise ValueError("keyframe table")
        sync[k - 1] = True
    return SampleTable(starts, sizes, accumulate(deltas[:-1], initial=0), deltas, sync)


# ------------------------------------------------------------ fragmented MP4 (the recorder's)


def fragment_samples(moof: bytes, moof_offset: int, track: VideoTrack) -> list[Sample]:
    """The video samples one ``moof`` (payload ``moof``, box at ``moof_offset``) lists, in
    decode order, with defaults from its tfhd or the track's trex."""
    assert track.defaults is not None
    out: list[Sample] = []
    for traf in children(moof, 0, len(moof)).get(b"traf", []):
        out.extend(_traf(moof, traf, track.track_id, moof_offset, track.defaults))
    return out


def fragment_audio(moof: bytes, moof_offset: int, audio: AudioTrack) -> list[Sample]:
    """The audio samples one ``moof`` lists (as ``fragment_samples`` for the video)."""
    assert audio.defaults is not None
    out: list[Sample] = []
    for traf in children(moof, 0, len(moof)).get(b"traf", []):
        out.extend(_traf(moof, traf, audio.track_id, moof_offset, audio.defaults))
    return out


def _traf(
    frag: bytes, traf: tuple[int, int], track: int, moof_offset: int, defaults: tuple[int, ...]
) -> list[Sample]:
    """The samples of one track fragment of ``track`` (none for another track's)."""
    kids = children(frag, *traf)
    tfhd = one(kids, b"tfhd")[0]
    flags = _u32(frag, tfhd) & 0xFFFFFF
    pos = tfhd + 4
    if _u32(frag, pos) != track:
        return []
    pos += 4
    if flags & 0x1:
        base = int(struct.unpack_from(">Q", frag, pos)[0])
        pos += 8
    elif flags & 0x20000:  # default-base-is-moof
        base = moof_offset
    else:
        raise ValueError("implicit base data offset")
    if flags & 0x2:
        pos += 4
    duration, size, sflags = defaults
    if flags & 0x8:
        duration, pos = _u32(frag, pos), pos + 4
    if flags & 0x10:
        size, pos = _u32(frag, pos), pos + 4
    if flags & 0x20:
        sflags = _u32(frag, pos)
    version, tpos = full(frag, one(kids, b"tfdt"))
    dts = int(struct.unpack_from(">Q" if version == 1 else ">I", frag, tpos)[0])
    out: list[Sample] = []
    for trun in kids.get(b"trun", []):
        rflags = _u32(frag, trun[0]) & 0xFFFFFF
        if rflags & 0x800 or not rflags & 0x1:
            raise ValueError("composition offsets, or no data offset")
        n, offset = struct.unpack_from(">Ii", frag, trun[0] + 4)
        rpos = trun[0] + 12
        first_flags = None
        if rflags & 0x4:
            first_flags, rpos = _u32(frag, rpos), rpos + 4
        fields = [bit for bit in (0x100, 0x200, 0x400) if rflags & bit]
        table = struct.unpack_from(f">{n * len(fields)}I", frag, rpos)
        at = base + offset
        for i in range(n):
            row = dict(zip(fields, table[i * len(fields) : (i + 1) * len(fields)], strict=True))
            d = row.get(0x100, duration)
            z = row.get(0x200, size)
            fl = row.get(0x400, first_flags if i == 0 and first_flags is not None else sflags)
            if d <= 0:
                raise ValueError("zero sample duration")
            out.append(Sample(at, z, dts, d, not fl & _NON_SYNC))
            at += z
            dts += d
    return out


# ------------------------------------------------------------------------ box plumbing


def children(body: bytes, start: int, end: int) -> Boxes:
    """The boxes directly inside ``body[start:end]``: type → [(payload start, end)]."""
    out: Boxes = {}
    pos = start
    while pos + 8 <= end:
        n, kind = struct.unpack_from(">I4s", body, pos)
        header = 8
        if n == 1:
            (n,) = struct.unpack_from(">Q", body, pos + 8)
            header = 16
        elif n == 0:
            n = end - pos
        if n < header or pos + n > end:
            raise ValueError("box overruns its parent")
        out.setdefault(kind, []).append((pos + header, pos + n))
        pos += n
    return out


def one(kids: Boxes, kind: bytes) -> tuple[int, int]:
    found = kids.get(kind, [])
    if len(found) != 1:
        raise ValueError(kind.decode("latin-1"))
    return found[0]


def full(body: bytes, box: tuple[int, int]) -> tuple[int, int]:
    """(version, payload offset after the version/flags word) of a full box."""
    return body[box[0]], box[0] + 4


def _u32(data: bytes, pos: int) -> int:
    return int(struct.unpack_from(">I", data, pos)[0])


def _mac_time(seconds: int) -> datetime | None:
    """A 1904-epoch time as ffmpeg reads it (a value below the offset is taken as Unix
    time already); 0 and anything at or before 1970 mean "not set", as in ``probe``."""
    if seconds >= _MAC_EPOCH_OFFSET:
        seconds -= _MAC_EPOCH_OFFSET
    if seconds <= 0:
        return None
    ts = datetime.fromtimestamp(seconds, UTC)
    return ts if ts.year > 1970 else None


def _mvhd(body: bytes, mvhd: tuple[int, int]) -> tuple[datetime | None, int, int]:
    """(creation time, movie timescale, declared duration in it)."""
    version, pos = full(body, mvhd)
    layout = ">QQIQ" if version == 1 else ">IIII"
    created, _, timescale, duration = struct.unpack_from(layout, body, pos)
    if timescale <= 0:
        raise ValueError("timescale")
    return _mac_time(created), timescale, duration


def _mdhd(body: bytes, mdhd: tuple[int, int]) -> tuple[int, datetime | None]:
    """(media timescale, creation time)."""
    version, pos = full(body, mdhd)
    created, _, timescale = struct.unpack_from(">QQI" if version == 1 else ">III", body, pos)
    if timescale <= 0:
        raise ValueError("timescale")
    return timescale, _mac_time(created)


def _stsd(body: bytes, stsd: tuple[int, int]) -> tuple[str, bytes, bytes]:
    """(codec, the sample entry box, its decoder configuration record)."""
    _, pos = full(body, stsd)
    (count,) = struct.unpack_from(">I", body, pos)
    if count != 1:
        raise ValueError("sample descriptions")
    n, kind = struct.unpack_from(">I4s", body, pos + 4)
    codec = _CODECS.get(kind)
    entry = pos + 4
    if codec is None or n < _VISUAL_ENTRY or entry + n > stsd[1]:
        raise ValueError("codec")
    config = one(children(body, entry + _VISUAL_ENTRY, entry + n), _CONFIG_BOX[codec])
    return codec, bytes(body[entry : entry + n]), bytes(body[config[0] : config[1]])


def _stts(body: bytes, stts: tuple[int, int]) -> list[int]:
    _, pos = full(body, stts)
    (count,) = struct.unpack_from(">I", body, pos)
    pairs = struct.unpack_from(f">{2 * count}I", body, pos + 4)
    deltas: list[int] = []
    for i in range(0, len(pairs), 2):
        deltas.extend([pairs[i + 1]] * pairs[i])
    return deltas


def _stsz(body: bytes, stsz: tuple[int, int]) -> list[int]:
    _, pos = full(body, stsz)
    fixed, count = struct.unpack_from(">II", body, pos)
    if fixed:
        return [fixed] * count
    return list(struct.unpack_from(f">{count}I", body, pos + 8))


def _chunk_offsets(body: bytes, stbl: Boxes) -> tuple[int, ...]:
    if (b"stco" in stbl) == (b"co64" in stbl):
        raise ValueError("chunk offsets")
    wide = b"co64" in stbl
    _, pos = full(body, one(stbl, b"co64" if wide else b"stco"))
    (count,) = struct.unpack_from(">I", body, pos)
    return struct.unpack_from(f">{count}{'Q' if wide else 'I'}", body, pos + 4)


def _stsc(body: bytes, stsc: tuple[int, int]) -> list[tuple[int, int]]:
    """[(first chunk, samples per chunk)] (1-based chunks, as stored)."""
    _, pos = full(body, stsc)
    (count,) = struct.unpack_from(">I", body, pos)
    flat = struct.unpack_from(f">{3 * count}I", body, pos + 4)
    runs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 3)]
    if not runs or runs[0][0] != 1 or any(b[0] <= a[0] or a[1] == 0 for a, b in pairwise(runs)):
        raise ValueError("sample-to-chunk table")
    return runs


def _sample_offsets(
    offsets: tuple[int, ...], runs: list[tuple[int, int]], sizes: list[int]
) -> list[int]:
    """Each sample's byte offset, from its chunk's offset and the sizes before it there."""
    starts: list[int] = []
    bounds = [*(r[0] - 1 for r in runs[1:]), len(offsets)]
    for (first, per), stop in zip(runs, bounds, strict=True):
        for chunk in range(first - 1, stop):
            base = offsets[chunk]
            k = len(starts)
            starts.extend(accumulate(sizes[k : k + per - 1], initial=base))
    if len(starts) != len(sizes):
        raise ValueError("chunks hold a different number of samples")
    return starts


def _stss(body: bytes, stss: tuple[int, int] | None) -> tuple[int, ...]:
    if stss is None:
        return ()  # every sample is a keyframe
    _, pos = full(body, stss)
    (count,) = struct.unpack_from(">I", body, pos)
    if count == 0:
        raise ValueError("no keyframes")
    return struct.unpack_from(f">{count}I", body, pos + 4)


def _check_edits(body: bytes, edts: tuple[int, int], scaled_total: int, timescale: int) -> None:
    """Only the edit list that shows the whole media from its start is vouched for (what
    ffmpeg writes without B-frames); pre-roll, gaps or a trimmed end are the demuxer's.
    ``scaled_total`` = the media's length x the movie timescale (exact integer compare)."""
    elst = one(children(body, *edts), b"elst")
    version, pos = full(body, elst)
    (count,) = struct.unpack_from(">I", body, pos)
    if count != 1:
        raise ValueError("edit list")
    shown, media_time, rate = struct.unpack_from(">QqI" if version == 1 else ">IiI", body, pos + 4)
    if media_time != 0 or rate != 1 << 16:
        raise ValueError("edit list")
    # the edit's length is rounded to the movie timescale: allow one movie tick short
    if (shown + 1) * timescale < scaled_total:
        raise ValueError("edit list trims the end")

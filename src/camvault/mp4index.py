"""The video track of an MP4/MOV, read from its index alone (``moov``, and the ``moof``
boxes of a fragmented file such as the recorder's).

``probe`` judges a segment by demuxing every packet with PyAV: ~45 ms of CPU for a 33 MB
segment, twice what hashing it costs, on every ingest and every recorder cut. A plain MP4
already lists every sample (size, byte offset, duration, keyframes) in its ``moov`` box,
so for the common case — one H.264/H.265 video track, no composition offsets, no edit list
that hides or trims media — the same answers come from that table: the sample count, the
duration (sum of the sample durations) and whether every sample's bytes lie inside the
file (a file cut short does not). ``read_index`` returns ``None`` for anything else
(B-frames, several video tracks, a real edit list, a fragmented file with a declared
length, an unknown layout, a damaged table): the caller then demuxes as before, which
also words the error. A fragmented file's samples are listed per fragment (tfhd, tfdt,
trun, with trex defaults), read from the few hundred bytes of each ``moof``.

Box layouts: ISO/IEC 14496-12 (mvhd, tkhd, mdhd, hdlr, stsd, stts, ctts, stsz, stsc,
stco/co64, stss, elst) and 14496-15 (avcC/hvcC: the decoder's parameter sets).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import accumulate, pairwise
from typing import BinaryIO

from camvault import mp4box

__all__ = ["VideoIndex", "read_index"]

_CODECS = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc"}
_CONFIG_BOX = {"h264": b"avcC", "hevc": b"hvcC"}
_MAX_MOOV = 64 * 1024 * 1024  # a moov this large is not a camera segment's: demux instead
_MAC_EPOCH_OFFSET = 2082844800  # 1904-01-01 → 1970-01-01, in seconds
_VISUAL_ENTRY = 8 + 78  # box header + VisualSampleEntry fields before its child boxes


@dataclass(frozen=True, slots=True)
class VideoIndex:
    """What the index says of the one video track. ``first_key`` is the byte range of the
    first keyframe (for a decode check); ``extradata`` the decoder configuration record."""

    codec: str
    timescale: int
    duration_ticks: int
    samples: int
    first_key: tuple[int, int]
    extradata: bytes
    has_audio: bool
    creation_time: datetime | None

    @property
    def duration_seconds(self) -> float:
        return self.duration_ticks / self.timescale


def read_index(f: BinaryIO, size: int) -> VideoIndex | None:
    """The video track's index when the file is a plain MP4 this module vouches for and
    every sample lies inside its ``size`` bytes; else ``None`` (demux to judge it)."""
    try:
        return _read(f, size)
    # ValueError: not a layout this reader vouches for (raised below), or a broken table
    except (struct.error, ValueError, IndexError, KeyError, ZeroDivisionError):
        return None


def _read(f: BinaryIO, size: int) -> VideoIndex:
    moov = None
    moofs: list[mp4box.Box] = []
    for i, box in enumerate(mp4box.walk(f, size)):
        if box.fault:
            raise ValueError(box.fault)
        if i == 0 and box.kind != b"ftyp":
            raise ValueError("no ftyp first")
        if box.kind == b"moof":
            moofs.append(box)
        elif box.kind in (b"styp", b"sidx", b"ssix", b"prft", b"emsg"):
            raise ValueError("segment-level boxes")
        elif box.kind == b"moov":
            if moov is not None or box.size > _MAX_MOOV:
                raise ValueError("moov")
            moov = box
    if moov is None:
        raise ValueError("no moov")
    f.seek(moov.offset + moov.header)
    body = f.read(moov.size - moov.header)
    kids = _children(body, 0, len(body))
    created, movie_scale, declared = _mvhd(body, _one(kids, b"mvhd"))
    video: list[tuple[int, int]] = []
    has_audio = False
    for trak in kids.get(b"trak", []):
        mdia = _one(_children(body, *trak), b"mdia")
        handler = _handler(body, _one(_children(body, *mdia), b"hdlr"))
        if handler == b"soun":
            has_audio = True
        elif handler == b"vide":
            video.append(trak)
    if len(video) != 1:
        raise ValueError("not one video track")
    if (b"mvex" in kids) != bool(moofs):
        raise ValueError("fragments without mvex, or mvex without fragments")
    if moofs:
        # a declared length (mvhd, mehd) is what the demuxer holds the fragments to — a
        # file cut between two whole fragments is caught only that way: its job
        if declared or b"mehd" in _children(body, *_one(kids, b"mvex")):
            raise ValueError("fragmented file with a declared duration")
        index = _fragmented(f, size, body, video[0], _one(kids, b"mvex"), moofs)
    else:
        index = _video(body, video[0], size, movie_scale)
    # the movie's creation time first, then the track's (as ffmpeg's container, then stream tags)
    return replace(index, has_audio=has_audio, creation_time=created or index.creation_time)


def _video(body: bytes, trak: tuple[int, int], size: int, movie_scale: int) -> VideoIndex:
    tkids = _children(body, *trak)
    mdia = _children(body, *_one(tkids, b"mdia"))
    stbl = _children(body, *_one(_children(body, *_one(mdia, b"minf")), b"stbl"))
    if b"ctts" in stbl:  # B-frames: presentation order differs, the demuxer works it out
        raise ValueError("composition offsets")
    timescale, created = _mdhd(body, _one(mdia, b"mdhd"))
    codec, extradata = _stsd(body, _one(stbl, b"stsd"))
    deltas = _stts(body, _one(stbl, b"stts"))
    sizes = _stsz(body, _one(stbl, b"stsz"))
    if len(sizes) != len(deltas) or not sizes or min(deltas) <= 0:
        raise ValueError("sample tables disagree")
    offsets = _chunk_offsets(body, stbl)
    runs = _stsc(body, _one(stbl, b"stsc"))
    starts = _sample_offsets(offsets, runs, sizes)
    ends = max(s + n for s, n in zip(starts, sizes, strict=True))
    if ends > size:
        raise ValueError("samples past the end of the file")  # cut short: demux words it
    total = sum(deltas)
    if b"edts" in tkids:
        _check_edits(body, _one(tkids, b"edts"), total * movie_scale, timescale)
    keys = _stss(body, stbl.get(b"stss", [None])[0])
    first = keys[0] - 1 if keys else 0
    if not 0 <= first < len(sizes):
        raise ValueError("keyframe table")
    return VideoIndex(
        codec=codec,
        timescale=timescale,
        duration_ticks=total,
        samples=len(sizes),
        first_key=(starts[first], sizes[first]),
        extradata=extradata,
        has_audio=False,
        creation_time=created,
    )


# ------------------------------------------------------------ fragmented MP4 (the recorder's)

_NON_SYNC = 0x10000  # sample_is_non_sync_sample, in a sample's flags


def _fragmented(
    f: BinaryIO,
    size: int,
    body: bytes,
    trak: tuple[int, int],
    mvex: tuple[int, int],
    moofs: list[mp4box.Box],
) -> VideoIndex:
    """The video track of a fragmented MP4 (moov, then moof+mdat pairs): its samples are
    listed per fragment (tfhd/tfdt/trun), with defaults from tfhd or the moov's trex."""
    tkids = _children(body, *trak)
    if b"edts" in tkids:
        raise ValueError("edit list in a fragmented file")
    mdia = _children(body, *_one(tkids, b"mdia"))
    stbl = _children(body, *_one(_children(body, *_one(mdia, b"minf")), b"stbl"))
    if _stsz(body, _one(stbl, b"stsz")):
        raise ValueError("samples in the moov as well as in fragments")
    timescale, created = _mdhd(body, _one(mdia, b"mdhd"))
    codec, extradata = _stsd(body, _one(stbl, b"stsd"))
    version, pos = _full(body, _one(tkids, b"tkhd"))
    (track,) = struct.unpack_from(">I", body, pos + (16 if version == 1 else 8))
    trex = next(
        (t for t in _children(body, *mvex).get(b"trex", []) if _u32(body, t[0] + 4) == track),
        None,
    )
    if trex is None:
        raise ValueError("no trex for the video track")
    defaults = struct.unpack_from(">III", body, trex[0] + 12)  # duration, size, flags
    start: int | None = None
    end = samples = 0
    first_key: tuple[int, int] | None = None
    for moof in moofs:
        f.seek(moof.offset + moof.header)
        frag = f.read(moof.size - moof.header)
        for traf in _children(frag, 0, len(frag)).get(b"traf", []):
            got = _traf(frag, traf, track, moof.offset, defaults)
            if got is None:
                continue  # another track's fragment
            t0, ticks, count, data_end, key = got
            if data_end > size:
                raise ValueError("samples past the end of the file")  # demux words it
            start = t0 if start is None else min(start, t0)
            end = max(end, t0 + ticks)
            samples += count
            if first_key is None:
                first_key = key
    if start is None or first_key is None or samples == 0:
        raise ValueError("no video samples, or no keyframe")
    return VideoIndex(
        codec=codec,
        timescale=timescale,
        duration_ticks=end - start,
        samples=samples,
        first_key=first_key,
        extradata=extradata,
        has_audio=False,
        creation_time=created,
    )


def _u32(data: bytes, pos: int) -> int:
    return int(struct.unpack_from(">I", data, pos)[0])


def _traf(
    frag: bytes,
    traf: tuple[int, int],
    track: int,
    moof_offset: int,
    defaults: tuple[int, int, int],
) -> tuple[int, int, int, int, tuple[int, int] | None] | None:
    """(decode time, ticks, samples, end of their data, first keyframe's (offset, size) or
    None) of one track fragment of ``track``; None for another track's."""
    kids = _children(frag, *traf)
    tfhd = _one(kids, b"tfhd")[0]
    flags = _u32(frag, tfhd) & 0xFFFFFF
    pos = tfhd + 4
    if _u32(frag, pos) != track:
        return None
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
    version, tpos = _full(frag, _one(kids, b"tfdt"))
    decode_time = int(struct.unpack_from(">Q" if version == 1 else ">I", frag, tpos)[0])
    ticks = count = data_end = 0
    key: tuple[int, int] | None = None
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
            if key is None and not fl & _NON_SYNC:
                key = (at, z)
            at += z
            ticks += d
        count += n
        data_end = max(data_end, at)
    return decode_time, ticks, count, data_end, key


# ------------------------------------------------------------------------ box plumbing


def _children(body: bytes, start: int, end: int) -> dict[bytes, list[tuple[int, int]]]:
    """The boxes directly inside ``body[start:end]``: type → [(payload start, end)]."""
    out: dict[bytes, list[tuple[int, int]]] = {}
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


def _one(kids: dict[bytes, list[tuple[int, int]]], kind: bytes) -> tuple[int, int]:
    found = kids.get(kind, [])
    if len(found) != 1:
        raise ValueError(kind.decode("latin-1"))
    return found[0]


def _full(body: bytes, box: tuple[int, int]) -> tuple[int, int]:
    """(version, payload offset after the version/flags word) of a full box."""
    return body[box[0]], box[0] + 4


def _handler(body: bytes, hdlr: tuple[int, int]) -> bytes:
    return bytes(body[hdlr[0] + 8 : hdlr[0] + 12])


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
    version, pos = _full(body, mvhd)
    layout = ">QQIQ" if version == 1 else ">IIII"
    created, _, timescale, duration = struct.unpack_from(layout, body, pos)
    if timescale <= 0:
        raise ValueError("timescale")
    return _mac_time(created), timescale, duration


def _mdhd(body: bytes, mdhd: tuple[int, int]) -> tuple[int, datetime | None]:
    """(media timescale, creation time)."""
    version, pos = _full(body, mdhd)
    created, _, timescale = struct.unpack_from(">QQI" if version == 1 else ">III", body, pos)
    if timescale <= 0:
        raise ValueError("timescale")
    return timescale, _mac_time(created)


def _stsd(body: bytes, stsd: tuple[int, int]) -> tuple[str, bytes]:
    _, pos = _full(body, stsd)
    (count,) = struct.unpack_from(">I", body, pos)
    if count != 1:
        raise ValueError("sample descriptions")
    n, kind = struct.unpack_from(">I4s", body, pos + 4)
    codec = _CODECS.get(kind)
    if codec is None or n < _VISUAL_ENTRY:
        raise ValueError("codec")
    entry = pos + 4
    config = _one(_children(body, entry + _VISUAL_ENTRY, entry + n), _CONFIG_BOX[codec])
    return codec, bytes(body[config[0] : config[1]])


def _stts(body: bytes, stts: tuple[int, int]) -> list[int]:
    _, pos = _full(body, stts)
    (count,) = struct.unpack_from(">I", body, pos)
    pairs = struct.unpack_from(f">{2 * count}I", body, pos + 4)
    deltas: list[int] = []
    for i in range(0, len(pairs), 2):
        deltas.extend([pairs[i + 1]] * pairs[i])
    return deltas


def _stsz(body: bytes, stsz: tuple[int, int]) -> list[int]:
    _, pos = _full(body, stsz)
    fixed, count = struct.unpack_from(">II", body, pos)
    if fixed:
        return [fixed] * count
    return list(struct.unpack_from(f">{count}I", body, pos + 8))


def _chunk_offsets(body: bytes, stbl: dict[bytes, list[tuple[int, int]]]) -> tuple[int, ...]:
    if (b"stco" in stbl) == (b"co64" in stbl):
        raise ValueError("chunk offsets")
    wide = b"co64" in stbl
    _, pos = _full(body, _one(stbl, b"co64" if wide else b"stco"))
    (count,) = struct.unpack_from(">I", body, pos)
    return struct.unpack_from(f">{count}{'Q' if wide else 'I'}", body, pos + 4)


def _stsc(body: bytes, stsc: tuple[int, int]) -> list[tuple[int, int]]:
    """[(first chunk, samples per chunk)] (1-based chunks, as stored)."""
    _, pos = _full(body, stsc)
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
    _, pos = _full(body, stss)
    (count,) = struct.unpack_from(">I", body, pos)
    if count == 0:
        raise ValueError("no keyframes")
    return struct.unpack_from(f">{count}I", body, pos + 4)


def _check_edits(body: bytes, edts: tuple[int, int], scaled_total: int, timescale: int) -> None:
    """Only the edit list that shows the whole media from its start is vouched for (what
    ffmpeg writes without B-frames); pre-roll, gaps or a trimmed end are the demuxer's.
    ``scaled_total`` = the media's length x the movie timescale (exact integer compare)."""
    elst = _one(_children(body, *edts), b"elst")
    version, pos = _full(body, elst)
    (count,) = struct.unpack_from(">I", body, pos)
    if count != 1:
        raise ValueError("edit list")
    shown, media_time, rate = struct.unpack_from(">QqI" if version == 1 else ">IiI", body, pos + 4)
    if media_time != 0 or rate != 1 << 16:
        raise ValueError("edit list")
    # the edit's length is rounded to the movie timescale: allow one movie tick short
    if (shown + 1) * timescale < scaled_total:
        raise ValueError("edit list trims the end")

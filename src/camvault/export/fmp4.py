"""Writing a fragmented MP4 of one video track (and an AAC audio track, when the clip
keeps it): the init segment (ftyp + moov with empty sample tables and mvex/trex) and
each fragment's moof + mdat header — the layout ffmpeg writes with
``frag_keyframe+empty_moov+default_base_moof``, so the streamed clip looks the same
whichever way it was assembled. The samples' bytes follow each header as stored in the
recordings (``export.splice``).

Box layouts: ISO/IEC 14496-12 (ftyp, moov/mvhd/trak/tkhd/mdia/mdhd/hdlr/minf/vmhd/dinf/
stbl, mvex/trex, moof/mfhd/traf/tfhd/tfdt/trun, mdat, mfra/tfra/mfro); the tags in
``udta/meta/ilst`` as ffmpeg's mov muxer writes them for MP4 (hdlr ``mdir``, one ``data``
atom per item), so an export job's clip reads back the same ``title``/``comment``/
``creation_time`` whichever way it was assembled (``Header``).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

__all__ = ["Header", "Out", "fragment_header", "init_segment", "random_access"]

_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_MOVIE_SCALE = 1000
_TRACK = 1
_AUDIO = 2
_SYNC = 0x02000000  # sample_depends_on = 2: depends on no other sample
_NON_SYNC = 0x01010000  # sample_depends_on = 1, sample_is_non_sync_sample
_TRUN_FLAGS = 0x1 | 0x100 | 0x200 | 0x400  # data offset; per-sample duration, size, flags
_BASE_IS_MOOF = 0x020000
_MAC_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)
_UTF8 = 1  # a ``data`` atom's type: UTF-8 text


@dataclass(frozen=True, slots=True)
class Header:
    """What an export job's clip carries besides its samples, as ffmpeg writes it:
    ``created`` in mvhd/tkhd/mdhd (whole seconds; PyAV reads ``creation_time``), ``tags``
    as ilst items (``b"\\xa9nam"`` → ``title``, ``b"\\xa9cmt"`` → ``comment``), and an
    ``mfra`` random-access index after the last fragment."""

    created: datetime
    tags: tuple[tuple[bytes, str], ...]


class Out(NamedTuple):
    """One sample as written: its size, decode time and duration on the clip's timeline
    (track timescale), and whether it is a keyframe."""

    size: int
    dts: int
    duration: int
    sync: bool


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", version << 24 | flags), *payload)


def _times(created: int, *rest: int) -> tuple[int, bytes]:
    """(version, creation + modification times then ``rest``): version 1 (64-bit) only
    when a time does not fit 32 bits, as ffmpeg decides."""
    if created < 2**32:
        return 0, struct.pack(f">II{len(rest)}I", created, created, *rest)
    return 1, struct.pack(f">QQ{len(rest)}Q", created, created, *rest)


def init_segment(
    entry: bytes,
    timescale: int,
    width: int,
    height: int,
    header: Header | None = None,
    audio: tuple[bytes, int] | None = None,
) -> bytes:
    """ftyp + moov for one video track whose sample entry (avc1/hvc1 … box, copied as
    stored) is ``entry``; durations 0: the fragments carry the samples. ``header``: the
    creation time and tags (and ffmpeg's ftyp) of an export job's clip. ``audio``: (its
    mp4a sample entry, its timescale) — a second track."""
    if header is None:
        ftyp = box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso6iso2avc1mp41")
        created = 0
    else:  # what ffmpeg writes with these movflags
        ftyp = box(b"ftyp", b"iso5", struct.pack(">I", 0x200), b"iso5iso6mp41")
        created = int((header.created - _MAC_EPOCH).total_seconds())
    version, when = _times(created)
    mvhd = full_box(
        b"mvhd",
        version,
        0,
        when,
        struct.pack(">I", _MOVIE_SCALE),
        struct.pack(">Q" if version else ">I", 0),
        struct.pack(">IH", 0x10000, 0x100),  # rate 1.0, volume 1.0
        bytes(10),
        _MATRIX,
        bytes(24),
        struct.pack(">I", (_AUDIO if audio else _TRACK) + 1),  # next track id
    )
    video = full_box(b"vmhd", 0, 1, bytes(8))
    traks = [_trak(version, when, _TRACK, entry, timescale, video, size=(width, height))]
    trex = [full_box(b"trex", 0, 0, struct.pack(">IIIII", _TRACK, 1, 0, 0, 0))]
    if audio is not None:
        sound = full_box(b"smhd", 0, 0, bytes(4))
        traks.append(_trak(version, when, _AUDIO, *audio, sound))
        trex.append(full_box(b"trex", 0, 0, struct.pack(">IIIII", _AUDIO, 1, 0, 0, 0)))
    udta = b"" if header is None else _udta(header.tags)
    moov = box(b"moov", mvhd, *traks, box(b"mvex", *trex), udta)
    return ftyp + moov


def _dinf() -> bytes:
    return box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))


def _stbl(entry: bytes) -> bytes:
    return box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry),
        full_box(b"stts", 0, 0, bytes(4)),
        full_box(b"stsc", 0, 0, bytes(4)),
        full_box(b"stsz", 0, 0, bytes(8)),
        full_box(b"stco", 0, 0, bytes(4)),
    )


def _trak(
    version: int,
    when: bytes,
    track: int,
    entry: bytes,
    timescale: int,
    media_header: bytes,
    *,
    size: tuple[int, int] | None = None,
) -> bytes:
    """One track's trak, as ffmpeg writes it: a video track (``size``, vmhd) or an audio
    track (no size, smhd; alternate group 1, volume 1.0)."""
    audio = size is None
    tkhd = full_box(
        b"tkhd",
        version,
        0x3,  # enabled, in movie
        when,
        struct.pack(">II", track, 0),
        struct.pack(">Q" if version else ">I", 0),
        bytes(8),
        # layer, alternate group, volume, reserved
        struct.pack(">hhhH", 0, 1, 0x100, 0) if audio else struct.pack(">hhhH", 0, 0, 0, 0),
        _MATRIX,
        bytes(8) if size is None else struct.pack(">II", size[0] << 16, size[1] << 16),
    )
    mdhd = full_box(
        b"mdhd",
        version,
        0,
        when,
        struct.pack(">I", timescale),
        struct.pack(">Q" if version else ">I", 0),
        struct.pack(">HH", 0x55C4, 0),
    )
    handler = (b"soun", b"SoundHandler\0") if audio else (b"vide", b"VideoHandler\0")
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), handler[0], bytes(12), handler[1])
    minf = box(b"minf", media_header, _dinf(), _stbl(entry))
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


def _udta(tags: Sequence[tuple[bytes, str]]) -> bytes:
    """udta/meta (hdlr ``mdir``) + ilst, one ``data`` atom (UTF-8) per tag."""
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), b"mdir", b"appl", bytes(9))
    items = [
        box(kind, box(b"data", struct.pack(">II", _UTF8, 0), text.encode("utf-8")))
        for kind, text in tags
    ]
    return box(b"udta", full_box(b"meta", 0, 0, hdlr, box(b"ilst", *items)))


def random_access(entries: Sequence[tuple[int, int]]) -> bytes:
    """mfra: a tfra listing (decode time, moof offset) of the fragments that start on a
    keyframe, then mfro (the mfra's size, so a reader finds it from the file's end)."""
    rows = b"".join(struct.pack(">QQBBB", t, offset, 1, 1, 1) for t, offset in entries)
    tfra = full_box(b"tfra", 1, 0, struct.pack(">III", _TRACK, 0, len(entries)), rows)
    size = 8 + len(tfra) + 16
    return box(b"mfra", tfra, full_box(b"mfro", 0, 0, struct.pack(">I", size)))


def fragment_header(sequence: int, samples: Sequence[Out], audio: Sequence[Out] = ()) -> bytes:
    """moof + the mdat header for ``samples`` (decode order, contiguous on the timeline
    from the first one's ``dts``) and the ``audio`` samples of the same span; their bytes,
    in order, the video's then the audio's, complete the mdat."""
    mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", sequence))
    tracks = [(_TRACK, samples)] + ([(_AUDIO, audio)] if audio else [])
    moof_len = 8 + len(mfhd) + sum(_traf_len(s) for _, s in tracks)
    at = moof_len + 8  # the mdat's payload, from the moof's start (default-base-is-moof)
    trafs = []
    for track, rows in tracks:
        trafs.append(_traf(track, rows, at))
        at += sum(s.size for s in rows)
    moof = box(b"moof", mfhd, *trafs)
    assert len(moof) == moof_len
    return moof + struct.pack(">I4s", at - moof_len, b"mdat")


def _traf_len(samples: Sequence[Out]) -> int:
    return 8 + 16 + 20 + 20 + 12 * len(samples)  # traf, tfhd, tfdt, trun header, rows


def _traf(track: int, samples: Sequence[Out], data_offset: int) -> bytes:
    rows = b"".join(
        struct.pack(">III", s.duration, s.size, _SYNC if s.sync else _NON_SYNC) for s in samples
    )
    tfhd = full_box(b"tfhd", 0, _BASE_IS_MOOF, struct.pack(">I", track))
    tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", samples[0].dts))
    trun = full_box(b"trun", 0, _TRUN_FLAGS, struct.pack(">Ii", len(samples), data_offset), rows)
    return box(b"traf", tfhd, tfdt, trun)

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
trun, with trex defaults), read from the few hundred bytes of each ``moof``. The tables
themselves are read by ``mp4track`` (shared with the clip splicer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from camvault import mp4box
from camvault.mp4track import TABLE_ERRORS, Sample, fragment_samples, read_moov

__all__ = ["VideoIndex", "read_index"]

_MAX_MOOV = 64 * 1024 * 1024  # a moov this large is not a camera segment's: demux instead


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
    except (*TABLE_ERRORS, StopIteration):
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
    track = read_moov(f.read(moov.size - moov.header))
    if track.fragmented != bool(moofs):
        raise ValueError("fragments without mvex, or mvex without fragments")
    samples: Sequence[Sample] = track.samples
    if moofs:
        samples = []
        for moof in moofs:
            f.seek(moof.offset + moof.header)
            samples.extend(fragment_samples(f.read(moof.size - moof.header), moof.offset, track))
    if not samples:
        raise ValueError("no video samples")
    if max(s.offset + s.size for s in samples) > size:
        raise ValueError("samples past the end of the file")  # cut short: demux words it
    first_key = next(s for s in samples if s.sync)  # StopIteration: none (see read_index)
    return VideoIndex(
        codec=track.codec,
        timescale=track.timescale,
        duration_ticks=max(s.dts + s.duration for s in samples) - min(s.dts for s in samples),
        samples=len(samples),
        first_key=(first_key.offset, first_key.size),
        extradata=track.extradata,
        has_audio=track.has_audio,
        # the movie's creation time first, then the track's (as ffmpeg's container, then
        # stream tags)
        creation_time=track.movie_created or track.created,
    )

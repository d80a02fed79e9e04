"""The keyframes around an offset in a fragmented recording, found through its ``mfra``.

ffmpeg ends every fragmented MP4 it finishes (the recorder's segments included) with an
``mfra``: a ``tfra`` listing each fragment's decode time and ``moof`` offset, then an
``mfro`` giving the mfra's size, so a reader finds it from the file's end. With it the
keyframes around an offset cost two small ranged GETs for the index and one per fragment
looked at (about a GOP's worth), instead of a demuxer reading the file from its start over
HTTP: the windowed playback of a 5-min fragmented recording waited 1.2 s for its first
byte that way (bench/export_clip.py --layout fragmented).

The tfra is only a map: every fragment used is read and its samples (``mp4track``) say
where the keyframes are; a tfra time that disagrees with its moof's first sample, or no
usable mfra at all (a segment cut short by a crash and salvaged has none), returns None
and the caller probes as before. S3 errors propagate.
"""

from __future__ import annotations

import bisect
import struct

from camvault.export.clip import KEY_EPS, Keyframes, keyframes_around
from camvault.export.feed import RangeReader
from camvault.export.rangeindex import MAX_BOX, Index, box_header, read_at
from camvault.mp4track import TABLE_ERRORS, Sample, children, fragment_samples

__all__ = ["fragment_keyframes"]

_MOOF_READ = 16 * 1024  # one GET usually holds a whole moof (a 1 s fragment's: ~1-3 KB)


def fragment_keyframes(
    store: RangeReader, index: Index, offset: float, *, horizon: float = 30.0
) -> Keyframes | None:
    """The keyframes around ``offset`` (seconds from the recording's origin) as
    ``media.probe_keyframes`` finds them; None when the recording has no usable mfra."""
    if not index.track.fragmented:
        return None
    try:
        return _Lookup(store, index).keyframes(offset, horizon)
    except TABLE_ERRORS:
        return None


class _Lookup:
    def __init__(self, store: RangeReader, index: Index) -> None:
        self._store = store
        self._index = index
        self._scale = index.track.timescale
        self._moofs: dict[int, list[Sample]] = {}

    def _read(self, offset: int, n: int) -> bytes:
        return read_at(self._store, self._index.key, offset, n)

    def _seconds(self, dts: int) -> float:
        return (dts - self._index.first_dts) / self._scale

    def keyframes(self, offset: float, horizon: float) -> Keyframes | None:
        table = self._table()
        if not table:
            return None
        times = [self._seconds(t) for t, _ in table]
        k = max(bisect.bisect_right(times, offset + KEY_EPS) - 1, 0)
        while k > 0 and not any(  # back to the fragment with the keyframe at or before
            s.sync and self._seconds(s.dts) <= offset + KEY_EPS for s in self._samples(table[k])
        ):
            k -= 1
        packets = (
            (self._seconds(s.dts), s.sync) for e in table[k:] for s in self._samples(e)
        )  # read fragment by fragment, only as far as the rule needs
        return keyframes_around(packets, offset, horizon)

    def _samples(self, entry: tuple[int, int]) -> list[Sample]:
        """The video samples of the fragment at ``entry`` (tfra time, moof offset);
        ValueError when its first one does not start where the tfra says."""
        time, at = entry
        if at not in self._moofs:
            head = self._read(at, min(_MOOF_READ, self._index.total - at))
            kind, size, header = box_header(head, self._index.total - at)
            if kind != b"moof" or size > MAX_BOX:
                raise ValueError("the tfra points at no moof")
            body = head[header:size] if size <= len(head) else self._read(at, size)[header:]
            self._moofs[at] = fragment_samples(body, at, self._index.track)
        samples = self._moofs[at]
        if not samples or samples[0].dts != time:
            raise ValueError("the tfra disagrees with a moof")
        return samples

    def _table(self) -> list[tuple[int, int]]:
        """(decode time, moof offset) of every fragment of the video track, from the
        tfra; empty when the file does not end with an mfro/mfra."""
        total, start = self._index.total, self._index.start
        if total - start < 24:
            return []
        tail = self._read(total - 16, 16)
        if len(tail) < 16 or tail[4:8] != b"mfro":
            return []
        size = struct.unpack(">I", tail[12:16])[0]
        if not 24 <= size <= min(MAX_BOX, total - start):
            return []
        mfra = self._read(total - size, size)
        if mfra[4:8] != b"mfra" or struct.unpack(">I", mfra[:4])[0] != size:
            return []
        track = self._index.track.track_id
        for pos, end in children(mfra, 8, size).get(b"tfra", []):
            version = mfra[pos]
            tid, sizes, n = struct.unpack_from(">III", mfra, pos + 4)
            if tid != track:
                continue
            wide = version == 1
            row = (16 if wide else 8) + sum(((sizes >> s) & 3) + 1 for s in (4, 2, 0))
            if pos + 16 + n * row > end:
                raise ValueError("tfra entries")
            out = []
            for i in range(n):
                at = pos + 16 + i * row
                time, moof = struct.unpack_from(">QQ" if wide else ">II", mfra, at)
                if not start <= moof < total:
                    raise ValueError("tfra moof offset")
                out.append((int(time), int(moof)))
            return sorted(out)
        return []

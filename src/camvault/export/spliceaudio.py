"""The audio a spliced clip keeps (``export.splice``): the AAC track, copied sample for
sample alongside the video, where ffmpeg's concat + stream copy would keep it
(``media.base_cmd``: a CUT_BEFORE clip that is not strict).

Each entry's audio runs from its first video sample's time (the plan's keyframe, else
the file's first frame) to before its outpoint, as the concat demuxer's seek and
outpoint leave it (an edge packet or two may differ: the demuxer seeks by the video),
and is placed relative to that video sample on the clip's timeline, so the two stay in
sync whatever the gaps between recordings. Times are the demuxer's: a plain file's
audio edit list (the encoder's priming) is taken off its decode times.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from camvault.export.clip import CUT_BEFORE, ClipPlan, Entry
from camvault.export.fmp4 import Out
from camvault.export.rangeindex import Index
from camvault.mp4track import AudioTrack, Sample

log = logging.getLogger(__name__)

__all__ = ["AudioSelect", "keeps_audio", "place"]


def keeps_audio(plan: ClipPlan, indexes: Sequence[Index], *, strict: bool) -> bool | None:
    """Whether the clip carries the sources' audio: False when ffmpeg would drop it (or
    there is none), True when every source has the same AAC track (one init segment fits
    them all), None when ffmpeg must cut it (audio it would keep but the splice cannot
    copy: another codec, or audio in some sources only, or differing settings)."""
    if plan.cut != CUT_BEFORE or strict or not any(i.track.has_audio for i in indexes):
        return False
    tracks = [i.track.audio for i in indexes]
    first = tracks[0]
    if first is None or any(
        a is None or a.timescale != first.timescale or a.entry != first.entry for a in tracks
    ):
        log.debug("clip assembled by ffmpeg: audio the splice cannot copy")
        return None
    return True


class AudioSelect:
    """Which audio samples of an entry go into the clip: from the time of its first video
    sample (``v0``, the file's decode time) to before the outpoint — decode times compared
    exactly, in units of 1 / (video x audio timescale) s."""

    def __init__(self, entry: Entry, index: Index, v0: int) -> None:
        audio = index.track.audio
        assert audio is not None
        self.track: AudioTrack = audio
        vs, self._as = index.track.timescale, audio.timescale
        self._vs = vs
        origin = index.first_dts * self._as  # the file's first video sample, scaled
        self._origin = origin
        self._from = v0 * self._as
        self._out = round((entry.outpoint - entry.source.origin) * 1e6) * vs * self._as
        self.v0 = v0

    def time(self, s: Sample) -> int:
        """``s``'s decode time as the demuxer gives it, x the video timescale."""
        return (s.dts - self.track.shift) * self._vs

    def wanted(self, s: Sample, before: int | None = None) -> bool:
        """In the entry's span (and before the video decode time ``before``, if given)."""
        t = self.time(s)
        if t < self._from or (t - self._origin) * 1_000_000 >= self._out:
            return False
        return before is None or t < before * self._as

    def before(self, s: Sample, dts: int) -> bool:
        """Whether ``s`` starts before the video decode time ``dts``."""
        return self.time(s) < dts * self._as

    def take(self, samples: Iterable[Sample], before: int | None = None) -> list[Sample]:
        return [s for s in samples if self.wanted(s, before)]

    def span(self) -> range:
        """A plain file's samples in the entry's span, as positions in its table."""
        table = self.track.samples
        picked = [k for k, s in enumerate(table) if self.wanted(s)]
        return range(picked[0], picked[-1] + 1) if picked else range(0)

    def place(self, samples: Sequence[Sample], placed_v0: int, floor: int) -> list[Out]:
        """``samples`` on the clip's timeline (audio timescale), the entry's first video
        sample at ``placed_v0`` (video timescale), none before ``floor``; each lasts to
        the next one, the last as stored."""
        return place(samples, self.track, self._vs, self.v0, placed_v0, floor)


def place(
    samples: Sequence[Sample], audio: AudioTrack, vs: int, v0: int, placed_v0: int, floor: int
) -> list[Out]:
    """See ``AudioSelect.place``."""
    shift = round(placed_v0 * audio.timescale / vs) - round(v0 * audio.timescale / vs)
    times = [s.dts - audio.shift + shift for s in samples]
    out: list[Out] = []
    for k, s in enumerate(samples):
        dts = max(times[k], floor)
        dur = max(1, times[k + 1] - dts) if k + 1 < len(samples) else s.duration
        out.append(Out(s.size, dts, dur, True))
        floor = dts + 1
    return out

"""A streamed clip assembled from the recordings' own samples, without ffmpeg (what
Moonfire NVR does): one init segment, then moof + mdat fragments whose sample bytes are
relayed straight from S3 ranged GETs — no re-encode, no remux process, no pipe.

ffmpeg's concat demuxer reads each presigned URL over one HTTP connection; that read,
not the copy, is what kept the streamed clip at x1.12-1.46 of "download + concat". Here
each recording's index is read first (``rangeindex``: its ``moov``, and the first
``moof`` of a fragmented one, in a couple of small GETs), then its samples in large ranged GETs
(``part`` bytes, one GET ahead on a thread): a plain MP4's selected samples from its
table, a fragmented one (the recorder's) front to back, parsing each moof as it passes.
Memory: about two parts plus one output chunk, whatever the clip's length.

Only what ``mp4track`` vouches for is spliced — one H.264/H.265 video track, no
composition offsets, a trivial edit list — and only when every source has the same
timescale and byte-identical sample entry (one init segment fits them all). Audio that
ffmpeg would keep (``media.base_cmd``: a CUT_BEFORE clip that is not strict) is copied
too when every source has the same AAC track (``spliceaudio``): each fragment then
carries the audio samples of its span. Anything else: ``prepare`` returns None and the
ffmpeg path runs as before.
The cut is the ``ClipPlan``'s, to the sample: the first entry starts on the plan's
keyframe, each entry stops before its outpoint (decode times compared in microseconds,
as the concat demuxer does), each entry's first sample sits at (its begin - the clip's
start) on the clip's timeline, and — as ffmpeg's muxer makes them — a sample lasts until
the next one starts, so the last frame before a gap covers it.

A GET that still fails after ``feed.ATTEMPTS`` tries, or a recording that turns out
broken mid-way, raises: the response ends badly, never as a short clip that looks whole.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import AsyncGenerator, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise

from camvault.errors import InvalidMedia
from camvault.export.clip import ClipPlan, Entry
from camvault.export.feed import MB, RangeReader
from camvault.export.fmp4 import Header, Out, fragment_header, init_segment, random_access
from camvault.export.rangeindex import MAX_BOX, Index, box_header, read_indexes
from camvault.export.spliceaudio import AudioSelect, keeps_audio
from camvault.export.splicereads import Chunks, Cursor
from camvault.mp4track import TABLE_ERRORS, Sample, fragment_audio, fragment_samples

log = logging.getLogger(__name__)

__all__ = ["Splice", "prepare", "relay"]

PART = 4 * MB  # bytes per ranged GET


@dataclass(frozen=True, slots=True)
class _Input:
    """One entry of the plan with its recording's index; ``span``: a plain file's selected
    samples (positions in its table; a fragmented file's are selected as its moofs pass),
    and the bytes to read, ``start`` to ``end``; ``audio``: a plain file's audio samples
    kept, and their selection (None: the clip has no audio)."""

    entry: Entry
    index: Index
    span: range
    start: int
    end: int
    audio: AudioSelect | None = None
    audio_span: range = range(0)


class _Select:
    """Which samples of an entry go into the clip, fed in decode order: from the plan's
    keyframe (``inpoint``; else the file's first sample) to before the ``outpoint``."""

    def __init__(self, entry: Entry, timescale: int, first_dts: int) -> None:
        origin = entry.source.origin
        self._first = first_dts
        self._out = round((entry.outpoint - origin) * 1e6) * timescale  # µs x timescale
        self._at = None if entry.inpoint is None else round((entry.inpoint - origin) * timescale)
        self._slop = max(1, timescale // 1000)  # the probe's keyframe time, to 1 ms
        self.done = False  # a sample at or after the outpoint was seen

    def take(self, samples: Sequence[Sample]) -> tuple[list[Sample], bool]:
        """(the samples of ``samples`` in the clip, whether the last of them is the
        entry's last)."""
        out: list[Sample] = []
        for s in samples:
            rel = s.dts - self._first
            if rel * 1_000_000 >= self._out:
                self.done = True
                break
            if self._at is not None:
                if rel < self._at - self._slop:
                    continue
                if not s.sync or rel > self._at + self._slop:
                    raise ValueError("the plan's keyframe is not in the sample table")
                self._at = None
            out.append(s)
        if out and (out[-1].dts + out[-1].duration - self._first) * 1_000_000 >= self._out:
            self.done = True
        return out, self.done


def prepare(
    store: RangeReader,
    plan: ClipPlan,
    *,
    strict: bool,
    part: int = PART,
    chunk: int = MB,
    indexes: list[Index] | None = None,
    header: Header | None = None,
) -> Splice | None:
    """The splice of ``plan`` when every source qualifies; None: use ffmpeg. The sources'
    ``indexes`` are read now unless given — before a byte of the response is sent.
    ``header``: an export job's tags and creation time (and an mfra at the end)."""
    if indexes is None:
        indexes = read_indexes(store, [e.source for e in plan.entries])
        if indexes is None:
            return None
    audio = keeps_audio(plan, indexes, strict=strict)
    if audio is None:
        return None
    inputs = []
    for entry, index in zip(plan.entries, indexes, strict=True):
        if index.track.fragmented:
            inputs.append(_Input(entry, index, range(0), index.start, index.total))
            continue
        try:
            table = index.track.samples
            taken, _ = _Select(entry, index.track.timescale, index.first_dts).take(table)
        except ValueError as exc:  # the plan's keyframe is not where the table has one
            log.debug("clip assembled by ffmpeg: %s", exc)
            return None
        if not taken:
            inputs.append(_Input(entry, index, range(0), 0, 0))
            continue
        # positions, not the samples: every recording's selection is held while the clip
        # streams, and a table keeps its samples compact (``mp4track.SampleTable``)
        lo = bisect.bisect_left(table, taken[0].dts, key=lambda t: t.dts)
        start, end = taken[0].offset, max(t.offset + t.size for t in taken)
        select, span = None, range(0)
        if audio:
            select = AudioSelect(entry, index, taken[0].dts)
            span = select.span()
            for k in span:  # interleaved with the video's: read in the same pass
                s = select.track.samples[k]
                start, end = min(start, s.offset), max(end, s.offset + s.size)
        span_v = range(lo, lo + len(taken))
        inputs.append(_Input(entry, index, span_v, start, end, select, span))
    return Splice(store, plan, inputs, part=part, chunk=chunk, header=header, audio=audio)


class Splice:
    """The clip's bytes, assembled: ``chunks()`` (blocking; ``relay`` runs it off the
    event loop). ``seconds``: how much of the clip's timeline has been written so far."""

    assembly = "splice"

    def __init__(
        self,
        store: RangeReader,
        plan: ClipPlan,
        inputs: list[_Input],
        *,
        part: int,
        chunk: int,
        header: Header | None = None,
        audio: bool = False,
    ) -> None:
        self._store = store
        self._audio = audio
        self._plan = plan
        self._inputs = inputs
        self._part = part
        self._chunk = chunk
        # GET buffers, reused across parts and recordings: with a fresh one per GET and
        # each finished recording keeping its last, a 12-min clip peaked 30 MB above the
        # start (10 MB reused), and the API grew 39-50 MB for the 1 h bench clip
        self._spare: list[bytearray] = []
        self._header = header
        self.seconds = 0.0
        scale = inputs[0].index.track.timescale
        begins = [plan.actual_start] + [e.source.start for e in plan.entries[1:]]
        self._bases = [round((b - plan.actual_start).total_seconds() * scale) for b in begins]

    def chunks(self) -> Generator[memoryview, None, None]:
        """The clip in ~``chunk``-byte pieces (the first one as soon as the first
        fragment is complete: time to first byte)."""
        track = self._inputs[0].index.track
        pool = ThreadPoolExecutor(2, thread_name_prefix="clip-get")
        out = Chunks(self._chunk)
        sound = track.audio if self._audio else None
        out.put(
            init_segment(
                track.entry,
                track.timescale,
                track.width,
                track.height,
                self._header,
                None if sound is None else (sound.entry, sound.timescale),
            )
        )
        keys: list[tuple[int, int]] = []  # (decode time, moof offset): the mfra's rows
        sequence = 0
        floor = 0  # the next sample's earliest decode time: they strictly increase
        afloor = 0  # the same for the audio
        cursors = [self._cursor(i, pool) for i in self._inputs]
        for cur, nxt in pairwise(cursors):
            cur.then = nxt.prime
        try:
            cursors[0].prime()
            for n, (inp, cur) in enumerate(zip(self._inputs, cursors, strict=True)):
                base = max(self._bases[n], floor)
                following = self._bases[n + 1] if n + 1 < len(self._bases) else None
                origin: int | None = None
                for batch, abatch, asel, last in self._batches(inp, cur):
                    if origin is None:
                        origin = batch[0].dts
                        placed_v0 = max(base, floor)
                    placed = []
                    for k, s in enumerate(batch):
                        dts = max(base + s.dts - origin, floor)
                        if k + 1 < len(batch):
                            dur = max(1, base + batch[k + 1].dts - origin - dts)
                        elif last and following is not None:
                            dur = max(1, following - dts)  # to the next entry, as ffmpeg's muxer
                        else:
                            dur = s.duration
                        placed.append(Out(s.size, dts, dur, s.sync))
                        floor = dts + 1
                    aplaced: list[Out] = []
                    if abatch and asel is not None:
                        aplaced = asel.place(abatch, placed_v0, afloor)
                        afloor = aplaced[-1].dts + 1
                    sequence += 1
                    if placed[0].sync:
                        keys.append((placed[0].dts, out.written))
                    out.put(fragment_header(sequence, placed, aplaced))
                    # in file order (one forward pass), the audio's bytes after the video's
                    sound_bytes = bytearray()
                    for offset, size, is_audio in _runs(batch, abatch):
                        for piece in cur.pieces(offset, size):
                            if is_audio:
                                sound_bytes += piece
                            else:
                                out.put(piece)
                    out.put(sound_bytes)
                    self.seconds = (placed[-1].dts + placed[-1].duration) / track.timescale
                    first = sequence == 1
                    yield from out.full()
                    if first:
                        yield from out.rest()
                cur.close()
            if self._header is not None:  # as ffmpeg ends a fragmented MP4
                out.put(random_access(keys))
            yield from out.rest()
        except TABLE_ERRORS as exc:
            raise InvalidMedia(f"a recording cannot be spliced: {exc}") from exc
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _cursor(self, inp: _Input, pool: ThreadPoolExecutor) -> Cursor:
        return Cursor(self._store, inp.index.key, inp.start, inp.end, self._part, pool, self._spare)

    def _batches(
        self, inp: _Input, cur: Cursor
    ) -> Iterator[tuple[list[Sample], list[Sample], AudioSelect | None, bool]]:
        """The entry's samples in output fragments: a plain file's per GOP, a fragmented
        one's per source fragment; with the audio samples of the same span, and whether
        it holds the entry's last sample."""
        index = inp.index
        if not index.track.fragmented:
            table = index.track.samples
            sound, apos = inp.audio, inp.audio_span.start

            def audio_before(dts: int | None) -> list[Sample]:
                """The entry's next audio samples, up to the video decode time ``dts``."""
                nonlocal apos
                got: list[Sample] = []
                while sound is not None and apos < inp.audio_span.stop:
                    s = sound.track.samples[apos]
                    if dts is not None and not sound.before(s, dts):
                        break
                    got.append(s)
                    apos += 1
                return got

            gop: list[Sample] = []
            for k in inp.span:
                s = table[k]
                if s.sync and gop:
                    yield gop, audio_before(s.dts), sound, False
                    gop = []
                gop.append(s)
            if gop:
                yield gop, audio_before(None), sound, True
            return
        select = _Select(inp.entry, index.track.timescale, index.first_dts)
        audio = index.track.audio if self._audio else None
        asel: AudioSelect | None = None
        pos, total = index.start, index.total
        while pos + 8 <= total and not select.done:
            kind, size, header = box_header(cur.read(pos, min(16, total - pos)), total - pos)
            if kind != b"moof":
                pos += size
                continue
            mdat = pos + size
            if size > MAX_BOX or mdat + 8 > total:
                return  # a fragment cut short (the recorder stopped mid-write): the end
            moof = cur.read(pos + header, size - header)
            samples = fragment_samples(moof, pos, index.track)
            heard = [] if audio is None else fragment_audio(moof, pos, audio)
            mkind, msize, mheader = box_header(cur.read(mdat, min(16, total - mdat)), total - mdat)
            if mkind != b"mdat" or any(
                s.offset < mdat + mheader or s.offset + s.size > mdat + msize
                for s in (*samples, *heard)
            ):
                raise ValueError("a fragment's samples lie outside the mdat after it")
            # as the demuxer: the samples a file cut short still holds whole
            taken, last = select.take([s for s in samples if s.offset + s.size <= total])
            if taken:
                if asel is None and self._audio:
                    asel = AudioSelect(inp.entry, index, taken[0].dts)
                whole = (s for s in heard if s.offset + s.size <= total)
                yield taken, [] if asel is None else asel.take(whole), asel, last
            pos = mdat + msize


def _runs(batch: list[Sample], audio: list[Sample]) -> list[tuple[int, int, bool]]:
    """(offset, size, whether audio) of the byte runs the samples make, adjacent samples
    of a track merged, in file order."""
    runs: list[tuple[int, int, bool]] = []
    for samples, is_audio in ((batch, False), (audio, True)):
        if not samples:
            continue
        start = end = samples[0].offset
        for s in samples:
            if s.offset != end:
                runs.append((start, end - start, is_audio))
                start = s.offset
            end = s.offset + s.size
        runs.append((start, end - start, is_audio))
    return sorted(runs)


async def relay(splice: Splice) -> AsyncGenerator[memoryview, None]:
    """``splice.chunks()`` run on a worker thread, one hop per chunk; a consumer that
    stops early (client gone) closes it, which stops its GETs."""
    loop = asyncio.get_running_loop()
    gen = splice.chunks()
    # one thread for all its steps: the output chunks are then allocated in one malloc
    # arena, not in whichever of the loop's default-executor threads ran each step
    step = ThreadPoolExecutor(1, thread_name_prefix="clip-splice")
    pending: asyncio.Future[memoryview | None] | None = None
    try:
        while True:
            pending = loop.run_in_executor(step, next, gen, None)
            data = await asyncio.shield(pending)  # cancelled: the step itself runs on
            pending = None
            if data is None:
                break
            yield data
    finally:
        if pending is not None:  # a step still running: close only after it
            await asyncio.wait([pending])
        await loop.run_in_executor(step, gen.close)
        step.shutdown(wait=False)

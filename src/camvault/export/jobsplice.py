"""An export job's clip assembled from the recordings' samples (``export.splice``) instead
of by ffmpeg, when every source qualifies — the streamed routes' rules, with the job's
cut: audio is kept on a CUT_BEFORE clip — copied when it is the same AAC track in every
source (``spliceaudio``), else that clip is left to ffmpeg (``media.render_stream``), as
is anything the splice does not vouch for.

The job's process stays small and never imports PyAV: the plan comes from the
recordings' indexes (``rangeindex.plan_indexed``: origins, a plain first recording's
keyframes, a fragmented one's from its mfra); only a fragmented first recording without
a usable mfra has its keyframes probed, by the ffmpeg binary (``ffprobe``) as before.
The clip goes chunk by chunk into the upload's sink (hashed, teed, sent as parts:
``upload.StreamUpload``); its init segment carries the tags and creation time ffmpeg
wrote (``fmp4.Header``) and an mfra ends it, as ffmpeg ends it.
Memory: the splice's two GET parts and one output chunk, plus the sink's buffers.

A GET that still fails after its retries, or a recording broken mid-way, raises out of
``write``: the caller aborts the upload and fails the job — never a short clip marked done.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

from camvault.export import ffprobe
from camvault.export.clip import ClipPlan, Keyframes, Source
from camvault.export.feed import RangeReader
from camvault.export.fmp4 import Header
from camvault.export.media import ClipMetadata, Sink
from camvault.export.rangeindex import Index, plan_indexed
from camvault.export.splice import Splice, prepare

__all__ = ["FFMPEG", "SPLICE", "header", "plan_job", "prepare_job", "write"]

SPLICE = "splice"  # how the clip was assembled (the row's ``assembly``)
FFMPEG = "ffmpeg"
ENCODER = "camvault splice"  # the ``encoder`` tag (ffmpeg writes its own, Lavf…)


def plan_job(
    store: object,
    sources: list[Source],
    start: datetime,
    end: datetime,
    allowed_start: datetime,
    *,
    ffmpeg: str,
) -> tuple[ClipPlan, list[Index]] | None:
    """The plan from the sources' indexes, with them; None: a source does not qualify
    (or the store does no ranged reads), and the job probes and plans as before."""
    if not isinstance(store, RangeReader):
        return None

    def probe(first: Source, offset: float) -> Keyframes:
        return ffprobe.probe_keyframes(ffmpeg, first.url, offset, origin=first.origin)

    return plan_indexed(store, sources, start, end, allowed_start=allowed_start, probe=probe)


def header(meta: ClipMetadata) -> Header:
    """The tags ffmpeg writes from ``-metadata``: title, encoder, comment (that order),
    and the creation time to the second."""
    created = datetime.strptime(meta.creation_time, "%Y-%m-%dT%H:%M:%S.%fZ")
    return Header(
        created=created.replace(tzinfo=UTC, microsecond=0),
        tags=((b"\xa9nam", meta.title), (b"\xa9too", ENCODER), (b"\xa9cmt", meta.comment)),
    )


def prepare_job(
    store: RangeReader, plan: ClipPlan, indexes: list[Index], meta: ClipMetadata
) -> Splice | None:
    """The job's splice of ``plan``; None: ffmpeg cuts it (audio kept that the splice
    cannot copy, or a table that does not hold the plan's keyframe)."""
    return prepare(store, plan, strict=False, indexes=indexes, header=header(meta))


def write(
    splice: Splice,
    sink: Sink,
    seconds: float,
    *,
    on_progress: Callable[[float], None],
    check: Callable[[], None],
) -> None:
    """The clip into ``sink``; ``on_progress`` (percent of ``seconds``, below 100 until
    the caller finishes) after each chunk, ``check`` before it (raises to stop: the job
    was taken over)."""
    total = max(seconds, 1e-3)
    with contextlib.closing(splice.chunks()) as chunks:  # closed: its GETs stop
        for chunk in chunks:
            check()
            view = chunk
            while view:
                room = sink.space()
                n = min(len(room), len(view))
                room[:n] = view[:n]
                room.release()
                sink.commit(n)
                view = view[n:]
            on_progress(min(99.0, max(0.0, splice.seconds / total * 100)))

"""Planning a streamed clip (``clip.mp4``, a windowed recording's ``/media``) and deciding
how it is assembled: from the recordings' samples (``export.splice``) or by ffmpeg.

The recordings' indexes are read first, through ranged GETs (``export.rangeindex``). When
they all qualify, the plan's origins and the keyframes around the start come from those
tables (a fragmented first recording's from its mfra, ``export.randomaccess``; only one
without a usable mfra is still probed with PyAV) — the same answers the PyAV probes give,
without opening every recording a second time over HTTP. Otherwise the plan is made as before
(``jobs.plan_sources``) and ffmpeg cuts the clip.
"""

from __future__ import annotations

from datetime import datetime

from camvault.export.clip import ClipPlan, Source
from camvault.export.feed import RangeReader
from camvault.export.jobs import plan_sources
from camvault.export.media import probe_keyframes
from camvault.export.rangeindex import plan_indexed
from camvault.export.splice import Splice, prepare

__all__ = ["plan_stream"]


def plan_stream(
    store: object,
    sources: list[Source],
    start: datetime,
    end: datetime,
    *,
    allowed_start: datetime,
    strict: bool,
) -> tuple[ClipPlan, Splice | None]:
    """(the clip's plan, its splice — None: ffmpeg cuts it). ``store``: the S3 boundary
    (spliced only when it does ranged reads); ``strict``: a window's edge (no audio)."""
    reader = store if isinstance(store, RangeReader) else None
    planned = None
    if reader is not None:
        planned = plan_indexed(
            reader, sources, start, end, allowed_start=allowed_start,
            probe=lambda first, offset: probe_keyframes(first.url, offset)[1],
        )  # fmt: skip
    if reader is None or planned is None:
        return plan_sources(sources, start, end, allowed_start=allowed_start), None
    plan, indexes = planned
    return plan, prepare(reader, plan, strict=strict, indexes=indexes)

"""What the API needs for clips: the export requests (as the caller) and how to run
ffmpeg for the streamed, clipped playback route."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from camvault.export.feed import FeedOptions
from camvault.export.jobs import ExportRequests


@dataclass(frozen=True)
class ClipServices:
    """What the clip routes need: the export request service, the ffmpeg binary and a scratch
    directory."""

    requests: ExportRequests
    ffmpeg: str
    tmp_dir: Path
    feed: FeedOptions | None = None  # None: ffmpeg reads the presigned URLs itself

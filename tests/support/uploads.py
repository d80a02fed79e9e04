"""Segments put straight into an App's spool, for upload tests."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from camvault.app import App
from camvault.keys import object_key
from camvault.models import Segment
from camvault.spool import NewSegment

MB = 1024 * 1024


def admit_blob(app: App, path: Path, camera: str, start: datetime, size: int) -> Segment:
    """Put ``size`` random bytes straight into the spool (the uploader does not re-probe)."""
    path.write_bytes(os.urandom(size))
    return app.spool.admit(
        NewSegment(
            camera_id=camera,
            source=path,
            start_time=start,
            end_time=start + timedelta(seconds=300),
            duration_seconds=300.0,
            codec="h264",
            width=1280,
            height=720,
            ext="mp4",
            s3_key=object_key(app.settings.s3.prefix, camera, start, "mp4"),
        )
    )

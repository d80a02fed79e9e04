"""The light half of the wiring: the spool and the ingestor, without psycopg or boto3.

``camvault ingest FILE`` is run once per segment by cameras' upload scripts, so its fixed
cost matters. It needs the spool, the prober and the settings — not the catalog (unless
the camera is not in the config), not S3. ``App`` builds the same two things through these
functions, so the CLI's fast path and everything else are wired alike.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from camvault.config import Settings
    from camvault.ingest import Ingestor
    from camvault.spool import Spool


def open_spool(settings: Settings) -> Spool:
    from camvault.spool import Spool

    return Spool(
        settings.spool.dir,
        settings.spool.quarantine,
        crc32_min_bytes=settings.s3.multipart_threshold_mb * 1024 * 1024,
    )


def own_spool(
    settings: Settings,
    spool: Spool,
    *,
    lock_timeout: float = 0.0,
    on_wait: Callable[[float], None] | None = None,
) -> dict[str, int]:
    """Become this spool's uploader: take the lock (waiting up to ``lock_timeout`` s for
    another uploader), put interrupted work back on its path, and drop journal rows
    committed more than ``keep_committed_days`` ago. Before any ingest of this process
    admits files: ``recover`` finishes *interrupted* staging."""
    spool.lock_for_upload(timeout=lock_timeout, on_wait=on_wait)
    fixed = spool.recover()
    fixed["pruned"] = spool.prune_committed(timedelta(days=settings.spool.keep_committed_days))
    return fixed


def make_ingestor(
    settings: Settings, spool: Spool, catalog_has_camera: Callable[[str], bool]
) -> Ingestor:
    """Cameras listed in the config are known without asking the catalog; others are
    looked up with ``catalog_has_camera`` (which may open the catalog on first use)."""
    from camvault.ingest import Ingestor

    configured = {c.id for c in settings.cameras}

    def camera_exists(camera_id: str) -> bool:
        return camera_id in configured or catalog_has_camera(camera_id)

    return Ingestor(
        spool,
        camera_exists,
        prefix=settings.s3.prefix,
        future_tolerance=timedelta(seconds=settings.recording.future_tolerance_seconds),
    )

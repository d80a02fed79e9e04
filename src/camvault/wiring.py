"""The light half of the wiring: the spool and the ingestor, without psycopg or boto3.

``camvault ingest FILE`` is run once per segment by cameras' upload scripts, so its fixed
cost matters. It needs the spool, the prober and a few plain settings (``IngestConfig``) —
not the catalog (unless the camera is not in the config), not S3, not even pydantic when
``camvault.config_snapshot`` has the values. ``App`` builds the same two things through
these functions, so the CLI's fast path and everything else are wired alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from camvault.bucket import BucketSpec
    from camvault.config import LifecycleSettings, S3Settings, Settings
    from camvault.ingest import Ingestor
    from camvault.lifecycle import RetentionPolicy
    from camvault.spool import Spool


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """What the spool and the ingestor take from the settings, as plain values."""

    spool_dir: Path
    quarantine_dir: Path
    crc32_min_bytes: int  # files this large get a CRC32 for multipart uploads
    prefix: str  # the bucket key prefix, normalized
    future_tolerance_seconds: int
    keep_committed_days: int
    camera_ids: frozenset[str]  # cameras listed in the config

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestConfig:
        return cls(
            spool_dir=settings.spool.dir,
            quarantine_dir=settings.spool.quarantine,
            crc32_min_bytes=settings.s3.multipart_threshold_mb * 1024 * 1024,
            prefix=settings.s3.prefix,
            future_tolerance_seconds=settings.recording.future_tolerance_seconds,
            keep_committed_days=settings.spool.keep_committed_days,
            camera_ids=frozenset(c.id for c in settings.cameras),
        )


def retention_policy(lc: LifecycleSettings) -> RetentionPolicy:
    """``[lifecycle]`` as the plain values ``lifecycle``, ``bucket`` and ``retention`` take."""
    from camvault.lifecycle import Retention, RetentionPolicy

    return RetentionPolicy(
        default=Retention(*lc.retention()),
        cameras=tuple((c, Retention(*lc.retention(c))) for c in sorted(lc.cameras)),
        abort_incomplete_multipart_days=lc.abort_incomplete_multipart_days,
        export_expire_days=lc.export_expire_days,
    )


def bucket_spec(s3: S3Settings, lc: LifecycleSettings) -> BucketSpec:
    """What ``bucket apply`` makes of the bucket; ``s3`` with its endpoint resolved."""
    from camvault.bucket import BucketSpec

    return BucketSpec(
        region=s3.region,
        prefix=s3.prefix,
        endpoint_url=s3.endpoint_url or "",
        deny_insecure_transport=lc.deny_insecure_transport,
        retention=retention_policy(lc),
    )


def open_spool(cfg: IngestConfig) -> Spool:
    from camvault.spool import Spool

    return Spool(cfg.spool_dir, cfg.quarantine_dir, crc32_min_bytes=cfg.crc32_min_bytes)


def own_spool(
    cfg: IngestConfig,
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
    fixed["pruned"] = spool.prune_committed(timedelta(days=cfg.keep_committed_days))
    return fixed


def make_ingestor(
    cfg: IngestConfig, spool: Spool, catalog_has_camera: Callable[[str], bool]
) -> Ingestor:
    """Cameras listed in the config are known without asking the catalog; others are
    looked up with ``catalog_has_camera`` (which may open the catalog on first use)."""
    from camvault.ingest import Ingestor

    configured = cfg.camera_ids

    def camera_exists(camera_id: str) -> bool:
        return camera_id in configured or catalog_has_camera(camera_id)

    return Ingestor(
        spool,
        camera_exists,
        prefix=cfg.prefix,
        future_tolerance=timedelta(seconds=cfg.future_tolerance_seconds),
    )

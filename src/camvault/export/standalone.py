"""What ``camvault export`` needs of the configuration, as plain values — validated in a
short-lived child process, so the command itself never imports pydantic.

``camvault export`` runs a whole job in its own process next to its ffmpeg, and that
pair's peak memory is a product goal (bench/export_clip.py: ≤ 100 MB). pydantic and
pydantic-settings are ~10 MB of resident memory once imported, for a validation whose
answer is a dozen values. So ``resolve`` runs ``load_settings`` — exactly as every other
command does: same file, same ``CAMVAULT_*`` variables, same embedded-server resolution
— in a child Python that prints these values as JSON and exits (its memory goes with it,
before the job starts). If the child fails for any reason (a config error above all),
``resolve`` returns None and the caller validates in-process instead, which reports the
error the usual way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from camvault.export.feed import FeedOptions

if TYPE_CHECKING:
    from camvault.catalog.connector import Connector
    from camvault.config import Settings
    from camvault.export.jobs import ExportRunner
    from camvault.storage import S3ObjectStore

_TIMEOUT = 60.0  # seconds for the child (imports + validation: well under 1 s)


@dataclass(frozen=True, slots=True)
class S3Values:
    """``[s3]`` as ``make_client`` (``ClientOptions``) and ``S3ObjectStore``
    (``TransferOptions``) read it, the embedded server's endpoint resolved."""

    bucket: str
    region: str
    endpoint_url: str | None
    prefix: str
    addressing_style: Literal["auto", "path", "virtual"]
    multipart_threshold_mb: int
    multipart_chunk_mb: int
    transfer_concurrency: int
    connect_timeout_seconds: float
    read_timeout_seconds: float


@dataclass(frozen=True, slots=True)
class ExportConfig:
    """Everything the export command builds its connector, store and runner from."""

    database_url: str
    pool_min_size: int
    pool_max_size: int
    connect_timeout_seconds: float
    statement_timeout_ms: int
    s3: S3Values
    credentials: tuple[str, str] | None  # the embedded server's; None: boto3's chain
    max_export_minutes: int
    export_stale_seconds: float
    tmp_dir: Path
    ffmpeg: str
    node: str
    feed: FeedOptions | None

    @classmethod
    def from_settings(cls, settings: Settings) -> ExportConfig:
        from camvault.app import database_url, s3_settings
        from camvault.export.media import ffmpeg_exe
        from camvault.export.worker import feed_options, tmp_dir

        s3, creds = s3_settings(settings)
        d = settings.database
        return cls(
            database_url=database_url(settings),
            pool_min_size=d.pool_min_size,
            pool_max_size=d.pool_max_size,
            connect_timeout_seconds=d.connect_timeout_seconds,
            statement_timeout_ms=d.statement_timeout_ms,
            s3=S3Values(**{f.name: getattr(s3, f.name) for f in fields(S3Values)}),
            credentials=creds,
            max_export_minutes=settings.api.max_export_minutes,
            export_stale_seconds=settings.api.export_stale_seconds,
            tmp_dir=tmp_dir(settings),
            ffmpeg=ffmpeg_exe(settings.recording.ffmpeg),
            node=settings.node,
            feed=feed_options(settings.api),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> ExportConfig:
        raw: dict[str, Any] = json.loads(text)
        creds = raw["credentials"]
        return cls(
            **{
                **raw,
                "s3": S3Values(**raw["s3"]),
                "credentials": None if creds is None else (str(creds[0]), str(creds[1])),
                "tmp_dir": Path(raw["tmp_dir"]),
                "feed": None if raw["feed"] is None else FeedOptions(**raw["feed"]),
            }
        )


def export_store(cfg: ExportConfig) -> S3ObjectStore:
    """The store exports upload through (part by part: ``export.upload``)."""
    from camvault.storage import S3ObjectStore, make_client

    return S3ObjectStore(make_client(cfg.s3, credentials=cfg.credentials), cfg.s3)


def export_runner(connector: Connector, store: S3ObjectStore, cfg: ExportConfig) -> ExportRunner:
    """A runner on the service connection (workers update any job row)."""
    from camvault.export.jobs import ExportRunner

    return ExportRunner(
        connector,
        store,
        prefix=cfg.s3.prefix,
        tmp_dir=cfg.tmp_dir,
        ffmpeg=cfg.ffmpeg,
        stale_seconds=cfg.export_stale_seconds,
        node=cfg.node,
        # at most 2 parts in flight (+1 filling): an export's memory stays bounded
        part_concurrency=min(2, cfg.s3.transfer_concurrency),
        feed=cfg.feed,
    )


def resolve(config: str | None) -> ExportConfig | None:
    """The values, validated by a child process; None when it could not say (the caller
    then validates in-process: same answer, or the same error message)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", "from camvault.export.standalone import _child; _child()"],
            input=json.dumps(config),
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        if proc.returncode != 0:
            return None
        return ExportConfig.from_json(proc.stdout)
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None


def _child() -> None:
    """In the child: validate as every command does, print the values."""
    from camvault.config import load_settings

    config = json.loads(sys.stdin.read())
    sys.stdout.write(ExportConfig.from_settings(load_settings(config)).to_json())

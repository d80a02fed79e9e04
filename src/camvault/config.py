"""Typed settings, read once at start-up from ``camvault.toml`` and ``CAMVAULT_*`` variables.

The layering is declared with pydantic-settings (``Settings.model_config``, and the
sources in ``config_sources``): keyword overrides > environment > TOML file > defaults,
merged key by key. Environment names are ``CAMVAULT_<SECTION>_<KEY>``
(``CAMVAULT_S3_ENDPOINT_URL``, ``CAMVAULT_UPLOAD_MAX_RETRIES``: the prefix, then the nested
delimiter ``_`` splits once, so keys keep their underscores), ``CAMVAULT_DATA_DIR`` and
``CAMVAULT_NODE``, plus the short forms the design brief fixes (``CAMVAULT_SEGMENT_SECONDS``,
``CAMVAULT_NODE_*`` → ``[node]``). Unknown keys in the file are errors, so a typo fails
start-up instead of silently doing nothing. Nothing below start-up reads the environment or
the file again: the ``Settings`` object (or plain values taken from it) is passed in.

Importing this module costs pydantic + pydantic-settings (0.1 to 0.2 s): the command line
imports it only in handlers, and ``camvault ingest FILE`` of a configured camera usually
not at all (``camvault.config_snapshot``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from camvault.config_sources import LOAD, Load, layered_sources, split_node_table
from camvault.errors import ConfigError
from camvault.keys import CAMERA_ID_RE, normalize_prefix

DEFAULT_CONFIG_FILE = "camvault.toml"
DEFAULT_DATA_DIR = ".camvault"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    """``[database]``: where the catalog lives and how the pool is sized."""

    url: str = ""  # empty = the embedded PostgreSQL (pgserver) of `camvault run`
    pool_min_size: int = Field(1, ge=0)
    pool_max_size: int = Field(8, ge=1)
    connect_timeout_seconds: float = Field(5.0, gt=0)
    statement_timeout_ms: int = Field(15_000, ge=0)
    partitions_ahead_months: int = Field(3, ge=1, le=24)


class S3Settings(_Section):
    """``[s3]``: the bucket, its endpoint and how objects are sent."""

    bucket: str = "camvault"
    region: str = "us-east-1"
    # None (not set anywhere) = the embedded SeaweedFS of `camvault run`; "" = AWS;
    # anything else = that S3-compatible endpoint
    endpoint_url: str | None = None
    prefix: str = ""
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    multipart_threshold_mb: int = Field(64, ge=5)
    multipart_chunk_mb: int = Field(16, ge=5)
    transfer_concurrency: int = Field(8, ge=1, le=64)  # parts in flight per multipart upload
    connect_timeout_seconds: float = Field(5.0, gt=0)
    read_timeout_seconds: float = Field(30.0, gt=0)
    # If-None-Match on PUT: "auto" probes the endpoint once; HEAD-compare is always done too.
    conditional_writes: Literal["auto", "on", "off"] = "auto"

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return normalize_prefix(v)


class SpoolSettings(_Section):
    """``[spool]``: the local directory segments wait in before they are archived."""

    dir: Path = Path(DEFAULT_DATA_DIR) / "spool"
    quarantine_dir: Path | None = None  # default: <dir>/quarantine
    keep_committed_days: int = Field(7, ge=0)
    drop_poll_seconds: float = Field(2.0, gt=0)
    # a dropped file is taken only once its size has not changed for this long
    drop_settle_seconds: float = Field(3.0, ge=0)
    # below this much free space on the spool's filesystem: alert, status and /healthz say
    # so (nothing is deleted); checked every space_poll_seconds
    min_free_mb: int = Field(1024, ge=0)
    space_poll_seconds: float = Field(10.0, gt=0)

    @property
    def quarantine(self) -> Path:
        return self.quarantine_dir or self.dir / "quarantine"


class RecordingSettings(_Section):
    """``[recording]``: segment length and the time checks applied to every segment."""

    segment_seconds: int = Field(300, ge=1, le=3600)
    future_tolerance_seconds: int = Field(300, ge=0)  # a start later than now+this is rejected
    ffmpeg: str = ""  # empty = the binary bundled with imageio-ffmpeg
    # recorder (RTSP cameras): a silent stream ends the run after this socket timeout;
    # reconnects back off exponentially (full jitter) from base to max seconds
    timeout_seconds: float = Field(10.0, gt=0, le=10)
    reconnect_base_seconds: float = Field(1.0, gt=0)
    reconnect_max_seconds: float = Field(30.0, gt=0)


class UploadSettings(_Section):
    """``[upload]``: concurrency, the retry and redrive schedule, the multipart sweeper
    and the S3 circuit breaker."""

    concurrency: int = Field(4, ge=1, le=64)  # segments uploaded at once
    max_retries: int = Field(3, ge=0, le=20)  # retries after the first attempt, per round
    backoff_base_seconds: float = Field(1.0, ge=0)
    backoff_max_seconds: float = Field(30.0, ge=0)
    redrive_base_seconds: float = Field(60.0, ge=0)  # delay before the next round
    redrive_max_seconds: float = Field(3600.0, ge=0)
    poll_seconds: float = Field(1.0, gt=0)
    # incomplete multipart uploads under our prefix older than this are aborted by the
    # sweeper (those of keys in our own spool at once, when not being uploaded)
    stale_multipart_seconds: float = Field(3600.0, ge=0)
    sweep_interval_seconds: float = Field(300.0, gt=0)
    # circuit breaker per endpoint (S3, PostgreSQL): this many consecutive connection-level
    # failures, from at least two segments, mean "the endpoint is down": uploads pause and
    # one cheap probe is sent every probe_base..probe_max seconds (doubling) until it answers
    breaker_failures: int = Field(3, ge=2)
    probe_base_seconds: float = Field(0.5, gt=0)
    probe_max_seconds: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _order(self) -> UploadSettings:
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise ValueError("backoff_max_seconds must be >= backoff_base_seconds")
        if self.redrive_max_seconds < self.redrive_base_seconds:
            raise ValueError("redrive_max_seconds must be >= redrive_base_seconds")
        if self.probe_max_seconds < self.probe_base_seconds:
            raise ValueError("probe_max_seconds must be >= probe_base_seconds")
        return self


class AlertSettings(_Section):
    """``[alerts]``: where alerts go (Lambda, webhook) and how long a repeat is held back."""

    lambda_function: str = ""
    lambda_endpoint_url: str = ""
    webhook_url: str = ""
    dedupe_seconds: float = Field(900.0, ge=0)  # one failure alert per camera per interval
    lambda_region: str = ""  # empty = [s3] region
    timeout_seconds: float = Field(5.0, gt=0)  # per Lambda/webhook call


ArchiveClass = Literal["", "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR"]


def _check_order(transition_class: str, transition_days: int, expire_days: int) -> None:
    if transition_class and expire_days and expire_days <= transition_days:
        raise ValueError("expire_after_days must be greater than transition_after_days")


class RetentionOverride(_Section):
    """``[lifecycle.cameras.<camera_id>]``: a camera's own retention (by its key prefix).
    Keys left out inherit the ``[lifecycle]`` value."""

    transition_after_days: int | None = Field(None, ge=0)
    transition_storage_class: ArchiveClass | None = None
    expire_after_days: int | None = Field(None, ge=0)


class LifecycleSettings(_Section):
    """``[lifecycle]``: archive and expiry rules, per camera where overridden."""

    transition_after_days: int = Field(30, ge=0)
    transition_storage_class: ArchiveClass = "GLACIER"
    expire_after_days: int = Field(365, ge=0)  # 0 = never expire
    abort_incomplete_multipart_days: int = Field(1, ge=1)
    cameras: dict[str, RetentionOverride] = Field(default_factory=dict)  # per-camera overrides
    restore_tier: Literal["Expedited", "Standard", "Bulk"] = "Standard"
    restore_days: int = Field(7, ge=1, le=365)  # how long a restored copy stays readable
    # The deny-non-TLS policy statement locks out every plain-HTTP client, camvault included:
    # "auto" applies it only when the S3 endpoint is https (or AWS).
    deny_insecure_transport: Literal["auto", "on", "off"] = "auto"
    drift_grace_days: int = Field(2, ge=0)  # S3 runs lifecycle rules up to ~a day late
    export_expire_days: int = Field(7, ge=0)  # clip exports (exports/ prefix); 0 = keep

    @model_validator(mode="after")
    def _order(self) -> LifecycleSettings:
        _check_order(
            self.transition_storage_class, self.transition_after_days, self.expire_after_days
        )
        bad = sorted(repr(c) for c in self.cameras if not CAMERA_ID_RE.fullmatch(c))
        if bad:
            raise ValueError(f"[lifecycle.cameras] has invalid camera ids: {', '.join(bad)}")
        for camera_id in self.cameras:
            try:
                _check_order(*self.retention(camera_id))
            except ValueError as exc:
                raise ValueError(f"[lifecycle.cameras.{camera_id}]: {exc}") from None
        return self

    def retention(self, camera_id: str | None = None) -> tuple[str, int, int]:
        """(transition class, transition days, expire days) in force for a camera."""
        o = self.cameras.get(camera_id or "") or RetentionOverride()
        return (
            self.transition_storage_class
            if o.transition_storage_class is None
            else o.transition_storage_class,
            self.transition_after_days
            if o.transition_after_days is None
            else o.transition_after_days,
            self.expire_after_days if o.expire_after_days is None else o.expire_after_days,
        )


class ApiSettings(_Section):
    """``[api]``: the HTTP API: address, database login, sessions and sign-in throttle,
    limits, export workers."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    presign_ttl_seconds: int = Field(300, ge=1, le=3600)
    max_range_days: int = Field(31, ge=1)
    page_size: int = Field(100, ge=1)  # recordings per page when `limit` is not given
    max_page_size: int = Field(1000, ge=1)
    # The API's own login (e.g. a member of camvault_api); empty = [database] url. Either
    # way each transaction runs SET LOCAL ROLE database_role, so RLS always applies.
    database_url: str = ""
    database_role: str = Field("camvault_api", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    pool_max_size: int = Field(8, ge=1)
    # web sign-in (camvault.sessions): cookie lifetime, failed sign-in throttle
    session_hours: float = Field(12, gt=0, le=24 * 90)
    signin_window_minutes: int = Field(15, ge=1)
    signin_max_failures_per_user: int = Field(5, ge=1)
    signin_max_failures_per_addr: int = Field(20, ge=1)
    # where `npm ci` put hls.js and swagger-ui-dist; empty = <source checkout>/web/node_modules
    web_modules_dir: str = ""
    # request bodies larger than this are refused with 413 before they are parsed
    max_body_bytes: int = Field(65536, ge=1024, le=64 * 1024 * 1024)
    # /healthz answers from a cache this old at most: a flood costs no DB ping + S3 LIST each
    health_cache_seconds: float = Field(5.0, ge=0, le=300)
    # clip exports: longest range, worker threads per process (0 = this process runs
    # none), and how long a running job's heartbeat may be silent before another worker
    # takes it over (its worker died)
    max_export_minutes: int = Field(240, ge=1, le=24 * 60)
    export_workers: int = Field(2, ge=0, le=16)
    export_stale_seconds: float = Field(60.0, ge=1)
    # exports (job and streamed clip) may read their recordings with parallel ranged GETs
    # through the S3 client (export.feed): this many in flight, parts of this size, at most
    # this many parts buffered (memory per running export = ahead * part_mb). 0 = ffmpeg
    # reads the presigned URLs itself over one connection: faster against a local S3 with
    # 2 cores (the feed's copies cost CPU, bench/export_clip.py), try 4 against a remote S3
    export_fetch_parallel: int = Field(0, ge=0, le=32)
    export_fetch_part_mb: int = Field(4, ge=1, le=64)
    export_fetch_ahead: int = Field(6, ge=1, le=64)


class NodeSettings(_Section):
    """``[node]``: this process as a member of a fleet (``camvault.fleet``). In the file,
    ``[node] id = "…"`` sets the node id (the top-level ``node``, default the hostname)."""

    lease_seconds: float = Field(15.0, ge=3, le=600)
    # stop a camera this long before its lease could expire (finalizing the open segment
    # and clock drift must fit in it); must leave room for a renewal every lease/3
    stop_margin_seconds: float = Field(3.0, gt=0)
    max_cameras: int = Field(0, ge=0)  # 0 = no limit
    # pause between two camera starts on this node: spreads the connection burst
    start_stagger_seconds: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _margin(self) -> NodeSettings:
        if self.lease_seconds - self.stop_margin_seconds <= self.lease_seconds / 3:
            raise ValueError("stop_margin_seconds must be less than 2/3 of lease_seconds")
        return self


class CameraSettings(_Section):
    """``[[cameras]]``: one camera of the config file (upserted into the catalog)."""

    id: str
    name: str = ""
    url: str | None = None  # RTSP source; omit for drop-in (ingest-only) cameras
    segment_seconds: int | None = Field(None, ge=1, le=3600)
    enabled: bool = True
    drop_dir: Path | None = None  # watched directory for finished segment files

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not CAMERA_ID_RE.fullmatch(v):
            raise ValueError(f"camera id {v!r} must be 1-64 of A-Z a-z 0-9 _ . - ")
        return v


class Settings(BaseSettings):
    """Every setting. ``load_settings`` layers the sources; ``Settings.model_validate(dict)``
    (tests, a dumped copy handed to a child process) validates a dict alone, and so does
    ``Settings(**kw)`` outside ``load_settings`` (no environment, no file)."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix="CAMVAULT_",
        env_nested_delimiter="_",
        env_nested_max_split=1,  # CAMVAULT_S3_ENDPOINT_URL → s3.endpoint_url
    )

    data_dir: Path = Path(DEFAULT_DATA_DIR)
    node: str = Field(default_factory=lambda: os.uname().nodename)
    database: DatabaseSettings = DatabaseSettings()
    s3: S3Settings = S3Settings()
    spool: SpoolSettings = SpoolSettings()
    recording: RecordingSettings = RecordingSettings()
    upload: UploadSettings = UploadSettings()
    alerts: AlertSettings = AlertSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    api: ApiSettings = ApiSettings()
    fleet: NodeSettings = NodeSettings()  # the [node] table of the file
    cameras: tuple[CameraSettings, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _node_table(cls, data: Any) -> Any:
        return split_node_table(data)

    @model_validator(mode="after")
    def _unique_cameras(self) -> Settings:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids listed twice: {', '.join(dupes)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return layered_sources(settings_cls, init_settings)

    def camera(self, camera_id: str) -> CameraSettings | None:
        return next((c for c in self.cameras if c.id == camera_id), None)

    def segment_seconds_for(self, camera_id: str) -> int:
        cam = self.camera(camera_id)
        if cam is not None and cam.segment_seconds:
            return cam.segment_seconds
        return self.recording.segment_seconds


def _describe(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"invalid setting {where} in {source}: {err['msg']}{more}"


def config_file(path: str | Path | None, environ: Mapping[str, str]) -> tuple[Path, bool]:
    """The file to read and whether it was named (``--config``, ``CAMVAULT_CONFIG``)."""
    explicit = path is not None or "CAMVAULT_CONFIG" in environ
    return Path(path or environ.get("CAMVAULT_CONFIG") or DEFAULT_CONFIG_FILE), explicit


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the TOML file (if any), apply ``CAMVAULT_*`` variables, validate once.

    ``path=None`` means ``camvault.toml`` in the working directory if it exists; an
    explicitly named file that does not exist is an error.
    """
    environ = os.environ if environ is None else environ
    file, explicit = config_file(path, environ)
    if not file.exists():
        if explicit:
            raise ConfigError(f"config file {file} does not exist")
        load = Load(None, environ)
    else:
        load = Load(file, environ)
    token = LOAD.set(load)
    try:
        return Settings(**dict(overrides or {}))
    except SettingsError as exc:  # a CAMVAULT_* value pydantic-settings could not decode
        raise ConfigError(f"invalid CAMVAULT_* environment: {exc}") from exc
    except ValidationError as exc:
        source = str(file) if load.file else "defaults"
        if load.env_used:
            source += " + CAMVAULT_* environment"
        raise ConfigError(_describe(exc, source)) from exc
    finally:
        LOAD.reset(token)

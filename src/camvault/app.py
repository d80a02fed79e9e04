"""Wiring: build every stage from one ``Settings`` object, once, at start-up.

Each stage receives its I/O dependencies by constructor; this module is the only place
that knows which concrete implementation goes where. With no database URL / S3 endpoint
configured, the embedded servers started by ``camvault run`` are used: their addresses
are published in ``<data_dir>/embedded.json`` so other commands (``status``,
``recordings list``) on the same machine find them.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camvault.alerts import (
    AlertSink,
    DedupeStore,
    DedupingSink,
    FanOutSink,
    LambdaAlertSink,
    LogAlertSink,
    WebhookAlertSink,
)
from camvault.attempt_log import AttemptJournal, AttemptLog
from camvault.breaker import CircuitBreaker
from camvault.catalog import Catalog, PsycopgConnector
from camvault.catalog.attempts import AttemptCatalog
from camvault.config import S3Settings, Settings
from camvault.diskspace import DiskSpace, SpaceWatcher, disk_space
from camvault.errors import ConfigError
from camvault.lifecycle import EXPORTS_DIR, Expected, evaluate, lifecycle_rules
from camvault.models import Recording
from camvault.pipeline import EventHook, Pipeline
from camvault.retry import RetryPolicy
from camvault.s3.boto import S3Client
from camvault.spool import Spool
from camvault.storage import S3ObjectStore, cached_conditional_writes, make_client
from camvault.sweeper import MultipartSweeper
from camvault.uploader import Uploader
from camvault.wiring import (
    IngestConfig,
    make_ingestor,
    open_spool,
    own_spool,
    retention_policy,
)

if TYPE_CHECKING:
    from camvault.ingest import Ingestor  # imports PyAV, which `upload` does not need
    from camvault.recorder import Recorder

EMBEDDED_STATE = "embedded.json"


def embedded_state(settings: Settings) -> dict[str, Any]:
    path = settings.data_dir / EMBEDDED_STATE
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def database_url(settings: Settings) -> str:
    if settings.database.url:
        return settings.database.url
    url = embedded_state(settings).get("database_url")
    if not url:
        raise ConfigError(
            "no database configured: set [database] url / CAMVAULT_DATABASE_URL, "
            "or start `camvault run` for the embedded one"
        )
    return str(url)


def s3_settings(settings: Settings) -> tuple[S3Settings, tuple[str, str] | None]:
    """Resolve ``endpoint_url=None`` to the embedded SeaweedFS and its credentials;
    otherwise credentials come from boto3's standard chain (None)."""
    if settings.s3.endpoint_url is not None:
        return settings.s3, None
    state = embedded_state(settings)
    if not state.get("s3_endpoint_url"):
        raise ConfigError(
            'no S3 configured: set [s3] endpoint_url ("" for AWS) / '
            "CAMVAULT_S3_ENDPOINT_URL, or start `camvault run` for the embedded one"
        )
    creds = (str(state["s3_access_key"]), str(state["s3_secret_key"]))
    return settings.s3.model_copy(update={"endpoint_url": state["s3_endpoint_url"]}), creds


def s3_client(
    settings: Settings, *, max_pool: int = 32, **overrides: Any
) -> tuple[S3Client, S3Settings]:
    """The one place camvault builds S3 clients (``App.store``, the restore API, the
    lifecycle CLI, the export worker): the embedded server's endpoint and credentials are
    resolved here; ``overrides`` adjust ``[s3]`` for one use (e.g. smaller transfers)."""
    s3, creds = s3_settings(settings)
    if overrides:
        s3 = s3.model_copy(update=overrides)
    return make_client(s3, credentials=creds, max_pool=max_pool), s3


def lifecycle_expectation(settings: Settings) -> Callable[[Recording], Expected]:
    """What the configured lifecycle rules (the ones `bucket apply` installs) will do to a
    recording's object, evaluated as S3 does from the moment it is committed."""

    policy, prefix = retention_policy(settings.lifecycle), settings.s3.prefix

    def expect(rec: Recording) -> Expected:
        now = datetime.now(UTC)
        rules = lifecycle_rules(policy, prefix, [rec.camera_id])
        return evaluate(rules, rec.s3_key, created=now, now=now, size=rec.size_bytes)

    return expect


def retry_policy(settings: Settings) -> RetryPolicy:
    u = settings.upload
    return RetryPolicy(
        max_retries=u.max_retries,
        base_seconds=u.backoff_base_seconds,
        cap_seconds=u.backoff_max_seconds,
        redrive_base_seconds=u.redrive_base_seconds,
        redrive_cap_seconds=u.redrive_max_seconds,
    )


@dataclass
class App:
    """The wired application: settings, spool, catalog and the connection pool, plus builders
    for the stages (``ingestor``, ``store``, ``recorder``, ``pipeline``, …). ``App.open``
    builds it; ``close`` releases what it opened."""

    settings: Settings
    spool: Spool
    catalog: Catalog
    connector: PsycopgConnector
    _closers: list[Any] = field(default_factory=list)

    @classmethod
    def open(cls, settings: Settings, *, spool: Spool | None = None) -> App:
        """``spool``: share an open handle (its wake-ups reach this app's uploader)."""
        connector = PsycopgConnector(
            database_url(settings),
            min_size=settings.database.pool_min_size,
            max_size=settings.database.pool_max_size,
            connect_timeout=settings.database.connect_timeout_seconds,
            statement_timeout_ms=settings.database.statement_timeout_ms,
        )
        spool = spool or open_spool(IngestConfig.from_settings(settings))
        catalog = Catalog(connector, expect=lifecycle_expectation(settings), node=settings.node)
        return cls(settings, spool, catalog, connector)

    def close(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers.clear()
        self.connector.close()
        self.spool.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def own_spool(
        self, *, lock_timeout: float = 0.0, on_wait: Callable[[float], None] | None = None
    ) -> dict[str, int]:
        """Become this spool's uploader: take the lock (waiting up to ``lock_timeout`` s for
        another uploader to let go), put interrupted work back on its path, and drop
        journal rows committed more than ``keep_committed_days`` ago."""
        return own_spool(
            IngestConfig.from_settings(self.settings),
            self.spool,
            lock_timeout=lock_timeout,
            on_wait=on_wait,
        )

    # stages ----------------------------------------------------------------------------
    def register_cameras(self) -> int:
        """Cameras listed in the config file are upserted into the catalog at start-up."""
        for cam in self.settings.cameras:
            self.catalog.upsert_camera(cam.id, cam.name, cam.segment_seconds, cam.enabled)
        return len(self.settings.cameras)

    def ingestor(self) -> Ingestor:
        return make_ingestor(
            IngestConfig.from_settings(self.settings),
            self.spool,
            lambda cam: self.catalog.get_camera(cam) is not None,
        )

    def store(self) -> S3ObjectStore:
        s3 = self.settings.s3
        client, s3 = s3_client(
            self.settings,
            max_pool=max(32, self.settings.upload.concurrency * s3.transfer_concurrency + 4),
        )
        return S3ObjectStore(client, s3)

    def recorder(self, on_result: Any = None) -> Recorder:
        """One supervised ffmpeg per enabled camera with a ``url``, spooling its segments."""
        import imageio_ffmpeg

        from camvault.catalog.runs import CatalogRunLog
        from camvault.recorder import CameraRecorder, CameraSource, Recorder

        r = self.settings.recording
        ingest = self.ingestor().ingest
        run_log = CatalogRunLog(self.connector, self.settings.node)
        return Recorder(
            CameraRecorder(
                CameraSource(c.id, c.url, self.settings.segment_seconds_for(c.id)),
                ingest,
                work_dir=self.settings.spool.dir / "recording",
                ffmpeg=r.ffmpeg or imageio_ffmpeg.get_ffmpeg_exe(),
                run_log=run_log,
                backoff=RetryPolicy(
                    base_seconds=r.reconnect_base_seconds, cap_seconds=r.reconnect_max_seconds
                ),
                timeout_seconds=r.timeout_seconds,
                on_result=on_result,
            )
            for c in self.settings.cameras
            if c.url and c.enabled
        )

    def disk_space(self) -> DiskSpace:
        s = self.settings.spool
        return disk_space(s.dir, s.min_free_mb * 2**20)

    def space_watcher(self, alerts: AlertSink | None = None) -> SpaceWatcher:
        s = self.settings.spool
        return SpaceWatcher(
            s.dir,
            s.min_free_mb * 2**20,
            alerts or alert_sink(self.settings),
            node=self.settings.node,
            poll_seconds=s.space_poll_seconds,
        )

    def sweeper(self, store: S3ObjectStore | None = None) -> MultipartSweeper:
        return MultipartSweeper(
            store or self.store(),
            self.spool.key_states,
            prefix=self.settings.s3.prefix,
            max_age=timedelta(seconds=self.settings.upload.stale_multipart_seconds),
            in_use=self.export_in_use,
        )

    def export_in_use(self, key: str) -> bool:
        """Is ``key`` the object of an export job a live worker is writing (its multipart
        upload must outlive the sweeper's age limit)? Unknown — the catalog unreachable —
        counts as yes: never abort what may be in use."""
        if not key.startswith(self.settings.s3.prefix + EXPORTS_DIR):
            return False
        from camvault.export.jobs import export_key_in_use  # PyAV: only for export keys

        return export_key_in_use(self.connector, key, self.settings.api.export_stale_seconds)

    def _alert_state(self) -> DedupeStore:
        from camvault.fleet.alert_state import PgAlertState

        return PgAlertState(self.connector)  # one de-dup state for the whole fleet

    def pipeline(
        self,
        *,
        alerts: AlertSink | None = None,
        on_event: EventHook | None = None,
        rng: random.Random | None = None,
    ) -> Pipeline:
        store = self.store()
        mode = self.settings.s3.conditional_writes
        conditional = mode == "on" or (
            mode == "auto"
            and cached_conditional_writes(
                store,
                s3_settings(self.settings)[0].endpoint_url or "aws",
                self.settings.spool.dir / "s3-conditional-writes.json",
            )
        )
        journal = AttemptJournal(self.settings.spool.dir)
        self._closers.append(journal.close)
        return Pipeline(
            self.spool,
            Uploader(store, conditional_writes=conditional),
            self.catalog,
            attempt_log=AttemptLog(
                journal, AttemptCatalog(self.connector), breaker(self.settings, "PostgreSQL")
            ),
            s3_breaker=breaker(self.settings, "S3"),
            policy=retry_policy(self.settings),
            alerts=alerts or alert_sink(self.settings, store=self._alert_state()),
            node=self.settings.node,
            concurrency=self.settings.upload.concurrency,
            rng=rng,
            on_event=on_event,
            sweeper=self.sweeper(store),
            sweep_interval_seconds=self.settings.upload.sweep_interval_seconds,
        )


def breaker(settings: Settings, name: str) -> CircuitBreaker:
    u = settings.upload
    return CircuitBreaker(
        name,
        failure_threshold=u.breaker_failures,
        probe_base=u.probe_base_seconds,
        probe_cap=u.probe_max_seconds,
    )


def alert_sink(settings: Settings, store: DedupeStore | None = None) -> AlertSink:
    """Log always; Lambda and webhook when configured; deduplicated per camera (state in
    ``store`` when given, else in this process)."""
    a = settings.alerts
    sinks: list[AlertSink] = [LogAlertSink()]
    if a.lambda_function:
        import boto3
        from botocore.config import Config

        client = boto3.session.Session().client(
            "lambda",
            region_name=a.lambda_region or settings.s3.region,
            endpoint_url=a.lambda_endpoint_url or None,
            config=Config(
                connect_timeout=a.timeout_seconds,
                read_timeout=a.timeout_seconds,
                retries={"total_max_attempts": 2, "mode": "standard"},
            ),
        )
        sinks.append(LambdaAlertSink(client, a.lambda_function))
    if a.webhook_url:
        sinks.append(WebhookAlertSink(a.webhook_url, timeout=a.timeout_seconds))
    return DedupingSink(FanOutSink(sinks), a.dedupe_seconds, store=store)


def write_embedded_state(settings: Settings, state: dict[str, Any]) -> Path:
    path = settings.data_dir / EMBEDDED_STATE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    # 0600 from creation: it holds the embedded S3 secret
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(state, indent=2))
    os.replace(tmp, path)
    return path

"""Wiring the API to real services, and running it under uvicorn in a thread.

Used by ``camvault serve`` (API only) and ``camvault run`` (everything on one node).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI

from camvault.api import routes_restore
from camvault.api.app import create_app
from camvault.api.deps import ApiServices
from camvault.api.metrics import MetricsSource
from camvault.app import App, database_url
from camvault.catalog.access import AccessCatalog, RoleConnector
from camvault.catalog.attempts import AttemptCatalog
from camvault.catalog.connector import PsycopgConnector
from camvault.config import S3Settings
from camvault.diskspace import space_check
from camvault.errors import ServiceUnavailable
from camvault.export.worker import clip_services, start_workers
from camvault.pipeline import Tally

HEALTH_PROBE_PREFIX = "camvault-healthz-probe/"


def health_probe_prefix(s3: S3Settings) -> str:
    """Inside ``[s3] prefix``: a prefix-scoped IAM policy may LIST nothing else."""
    return s3.prefix + HEALTH_PROBE_PREFIX


def metrics_source(app: App, tally: Callable[[], Tally] | None = None) -> MetricsSource:
    def read() -> dict[str, float]:
        stats = app.spool.stats()
        space = app.disk_space()
        out: dict[str, float] = {
            "camvault_spool_depth": stats["pending"],
            "camvault_spool_pending_bytes": stats["pending_bytes"],
            "camvault_spool_quarantined": stats["quarantined"],
            "camvault_spool_conflicts": stats["by_state"]["conflict"],
            "camvault_spool_free_bytes": space.free_bytes,
            "camvault_spool_min_free_bytes": space.min_free_bytes,
        }
        if tally is not None:
            t = tally()
            out.update(
                camvault_uploads_committed=t.committed,
                camvault_upload_bytes=t.bytes,
                camvault_upload_failed_rounds=t.failed_rounds,
                camvault_upload_conflicts=t.conflicts,
            )
        return out

    return read


def build_services(
    app: App, *, tally: Callable[[], Tally] | None = None
) -> tuple[ApiServices, Callable[[], None]]:
    """The API's services from an open ``App``; returns them and a closer for the pool."""
    s = app.settings
    connector = PsycopgConnector(
        s.api.database_url or database_url(s),
        min_size=1,
        max_size=s.api.pool_max_size,
        connect_timeout=s.database.connect_timeout_seconds,
        statement_timeout_ms=s.database.statement_timeout_ms,
        application_name="camvault-api",
    )
    access = AccessCatalog(RoleConnector(connector, s.api.database_role))
    restores, gate = routes_restore.wire(s, RoleConnector(connector, s.api.database_role))
    clips = clip_services(s, RoleConnector(connector, s.api.database_role))
    store = app.store()
    probe = health_probe_prefix(s.s3)

    def s3_check() -> None:
        # a LIST under an empty prefix: raises when S3 or the bucket cannot be reached
        # (a HEAD of a missing key answers a bare 404 even when the bucket is missing)
        next(iter(store.list_keys(probe)), None)

    services = ApiServices(
        access=access,
        store=store,
        settings=s.api,
        gate=gate,
        restores=restores,
        clips=clips,
        health_checks={
            "database": access.ping,
            "s3": s3_check,
            "spool_disk": lambda: space_check(s.spool.dir, s.spool.min_free_mb * 2**20),
        },
        metrics_source=metrics_source(app, tally),
        upload_attempts=AttemptCatalog(RoleConnector(connector, s.api.database_role)),
        lease_seconds=s.fleet.lease_seconds,
    )
    return services, connector.close


def label_by_node(api: FastAPI, node: str) -> None:
    """/metrics of a fleet member: the API's own series plus the recorder's and the
    leases', every one labelled ``node`` so a dashboard can sum and split the fleet."""
    from prometheus_client import CollectorRegistry

    from camvault import recorder
    from camvault.fleet import metrics as fleet_metrics

    registry = CollectorRegistry()
    for source in (api.state.metrics.registry, recorder.REGISTRY, fleet_metrics.REGISTRY):
        registry.register(fleet_metrics.NodeLabelled(source, node))
    api.state.metrics.registry = registry


class ApiServer:
    """uvicorn serving ``app`` on a background thread; ``url`` once started."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="api", daemon=True)
        self.host = host
        self.port = port

    def start(self, timeout: float = 15.0) -> str:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"the API could not listen on {self.host}:{self.port} (port in use?)"
                )
            time.sleep(0.05)
        sockets: list[Any] = [s for srv in self._server.servers for s in srv.sockets]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self.url

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)


def start_api(
    app: App, *, host: str, port: int, tally: Callable[[], Tally] | None = None
) -> tuple[ApiServer, Callable[[], None]]:
    """Build and start the API; returns the server and a stop-and-close callable."""
    services, close = build_services(app, tally=tally)
    api = create_app(services)
    label_by_node(api, app.settings.node)
    server = ApiServer(api, host, port)
    try:
        server.start()
    except Exception:
        close()
        raise
    workers = start_workers(app)  # clip export jobs, claimed from the exports table

    def stop() -> None:
        if workers is not None:
            workers.stop()
        server.stop()
        close()

    return server, stop

"""A pool of export worker threads inside ``serve``/``run``: each claims jobs from the
``exports`` table (several processes can share the queue) and runs them one at a time.
ffmpeg does the heavy lifting in a child process, so the API's threads are never blocked.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

from camvault.app import App, s3_client
from camvault.catalog.connector import Connector
from camvault.config import ApiSettings, Settings
from camvault.errors import CamvaultError
from camvault.export.feed import FeedOptions, sweep_dead_dirs
from camvault.export.jobs import ExportRequests, ExportRunner
from camvault.export.media import ffmpeg_exe
from camvault.export.service import ClipServices
from camvault.storage import S3ObjectStore

log = logging.getLogger(__name__)


class ExportWorkers:
    """A pool of threads that claim queued export jobs and run them one at a time each;
    ``start``/``stop`` them with the server."""

    def __init__(self, runner: ExportRunner, *, threads: int = 2, poll_seconds: float = 1.0):
        self._runner = runner
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"export-worker-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming; a job still running is left to finish or, if the process exits
        first, to be taken over by another worker once its heartbeat is stale."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout / max(1, len(self._threads)))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self._runner.run_next()
            except CamvaultError as exc:  # catalog down: try again later
                log.warning("export worker: %s", exc)
                busy = False
            except Exception:  # a bug must not kill the pool
                log.exception("export worker: unexpected error")
                busy = False
            if not busy:
                self._stop.wait(self._poll)


def clip_services(settings: Settings, api_connector: Connector) -> ClipServices:
    """The API's side: requests as the API role, ffmpeg for the media route."""
    return ClipServices(
        ExportRequests(api_connector, max_minutes=settings.api.max_export_minutes),
        ffmpeg=ffmpeg_exe(settings.recording.ffmpeg),
        tmp_dir=tmp_dir(settings),
        feed=feed_options(settings.api),
    )


def feed_options(a: ApiSettings) -> FeedOptions | None:
    """How exports fetch their recordings (``[api] export_fetch_*``); None: ffmpeg's HTTP."""
    if a.export_fetch_parallel <= 0:
        return None
    return FeedOptions(
        part_bytes=a.export_fetch_part_mb * 1024 * 1024,
        parallel=a.export_fetch_parallel,
        ahead=max(a.export_fetch_ahead, a.export_fetch_parallel),
    )


def tmp_dir(settings: Settings) -> Path:
    return settings.data_dir / "exports-tmp"


def export_store(settings: Settings) -> S3ObjectStore:
    """The store exports upload through (part by part: ``export.upload``)."""
    client, s3 = s3_client(settings)
    return S3ObjectStore(client, s3)


def export_runner(app: App, store: S3ObjectStore | None = None) -> ExportRunner:
    """A runner on the service connection (workers update any job row); built as
    ``camvault export`` builds its own (``standalone.export_runner``)."""
    from camvault.export.standalone import ExportConfig
    from camvault.export.standalone import export_runner as runner

    cfg = ExportConfig.from_settings(app.settings)
    return runner(app.connector, store or export_store(app.settings), cfg)


def start_workers(app: App) -> ExportWorkers | None:
    # the FIFO dirs of clips a killed API was streaming (they hold no bytes, but pile up)
    with contextlib.suppress(OSError):
        sweep_dead_dirs()
    if app.settings.api.export_workers <= 0:
        return None
    runner = export_runner(app)
    try:
        runner.sweep_tmp()
    except (CamvaultError, OSError) as exc:  # a leftover file must not stop the server
        log.warning("export temp sweep failed: %s", exc)
    workers = ExportWorkers(runner, threads=app.settings.api.export_workers)
    workers.start()
    return workers

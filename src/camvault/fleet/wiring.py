"""Builds this process's ``Node`` from the settings (``camvault run``, ``camvault record``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from camvault import __version__
from camvault.app import App, database_url
from camvault.fleet.leases import LeaseTiming
from camvault.fleet.node import Node
from camvault.fleet.store import FleetStore
from camvault.fleet.wakeups import CHANNEL
from camvault.ingest import Ingestor
from camvault.recorder import CameraRecorder, CameraSource, probe_stream
from camvault.retry import RetryPolicy

log = logging.getLogger(__name__)


def quick_probe(url: str, timeout: float) -> tuple[str, list[str]]:
    """The stream layout (video codec, audio codecs) the recorder needs, from the RTSP
    session description alone. The recorder's ``probe_stream`` also reads the stream
    until it can estimate the frame rate — 2 s of a 15 fps test camera, measured — which
    a camera taken over by hand-off would spend unrecorded; its codec names are already in
    the SDP (~0.2 s). A description that names no video codec gets the full probe."""
    import av

    options = {
        "rtsp_transport": "tcp",
        "timeout": str(int(timeout * 1e6)),
        "analyzeduration": "0",
        "probesize": "32",
        "fpsprobesize": "0",
    }
    with av.open(url, options=options, timeout=timeout) as c:
        video = next((s.codec_context.name for s in c.streams.video), "")
        audio = [s.codec_context.name for s in c.streams.audio]
    return (video, audio) if video else probe_stream(url, timeout)


class PreparedProbes:
    """A camera being handed to us is probed while the old holder still records it; the
    recorder's first connection then uses that answer (once, if fresh) instead of probing
    again, or waits for the probe under way rather than starting a second one. Keyed by
    url: cameras sharing a stream share the answer."""

    def __init__(self, timeout: float, max_age: float = 15.0) -> None:
        self._timeout = timeout
        self._max_age = max_age
        self._ready: dict[str, tuple[float, tuple[str, list[str]]]] = {}
        self._pending: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def prepare(self, url: str) -> None:
        with self._lock:
            if url in self._pending:
                return
            done = self._pending[url] = threading.Event()

        def run() -> None:
            try:
                layout = quick_probe(url, self._timeout)
                with self._lock:
                    self._ready[url] = (time.monotonic(), layout)
            except Exception:  # offline now: the recorder will find out and retry itself
                pass
            finally:
                with self._lock:
                    self._pending.pop(url, None)
                done.set()

        threading.Thread(target=run, name="handoff-probe", daemon=True).start()

    def probe(self, url: str, timeout: float) -> tuple[str, list[str]]:
        with self._lock:
            pending = self._pending.get(url)
        if pending is not None:
            pending.wait(timeout)
        with self._lock:
            got = self._ready.pop(url, None)
        if got is not None and time.monotonic() - got[0] < self._max_age:
            return got[1]
        return quick_probe(url, timeout)


def record_holder(node: str, pid: int) -> str:
    """The lease holder name of a ``camvault record`` process: one per process — two of
    them on one host must never share a holder, each would renew the other's leases as
    its own — and never a registered node's (it takes no share of the fleet)."""
    suffix = f".record-{pid}"
    return node[: 64 - len(suffix)] + suffix


def register_config_cameras(app: App, store: FleetStore) -> int:
    """Cameras of the config file go into the catalog, with their RTSP url: from there
    every node of the fleet may record them."""
    for c in app.settings.cameras:
        store.upsert_camera(
            c.id, name=c.name, url=c.url, segment_seconds=c.segment_seconds, enabled=c.enabled
        )
    return len(app.settings.cameras)


def build_node(
    app: App,
    *,
    on_result: Any = None,
    say: Callable[[str], None] | None = None,
    node_id: str | None = None,
    only: frozenset[str] | None = None,
) -> Node:
    """This process's node (``node_id``: default ``[node] id``); ``only``: record exactly
    these cameras, outside the balancing (``camvault record``)."""
    import imageio_ffmpeg

    from camvault.catalog.listen import Listener
    from camvault.catalog.runs import CatalogRunLog

    s = app.settings
    r, f = s.recording, s.fleet
    timing = LeaseTiming(f.lease_seconds, f.stop_margin_seconds)
    store = FleetStore(app.connector)
    leased: set[str] = set()
    configured = {c.id for c in s.cameras}

    def camera_exists(camera_id: str) -> bool:
        # a camera we hold a lease on exists: spooling must not wait for PostgreSQL
        if camera_id in leased or camera_id in configured:
            return True
        return app.catalog.get_camera(camera_id) is not None

    ingest = Ingestor(
        app.spool,
        camera_exists,
        prefix=s.s3.prefix,
        future_tolerance=timedelta(seconds=r.future_tolerance_seconds),
    ).ingest
    run_log = CatalogRunLog(app.connector, s.node)
    ffmpeg = r.ffmpeg or imageio_ffmpeg.get_ffmpeg_exe()
    probes = PreparedProbes(r.timeout_seconds)

    def make_recorder(
        camera_id: str, url: str, segment_seconds: int | None, floor: datetime | None = None
    ) -> CameraRecorder:
        leased.add(camera_id)
        return CameraRecorder(
            CameraSource(camera_id, url, segment_seconds or r.segment_seconds),
            ingest,
            work_dir=s.spool.dir / "recording",
            ffmpeg=ffmpeg,
            run_log=run_log,
            backoff=RetryPolicy(
                base_seconds=r.reconnect_base_seconds, cap_seconds=r.reconnect_max_seconds
            ),
            timeout_seconds=r.timeout_seconds,
            # a stop must be complete (ffmpeg killed at worst) before the lease can expire
            stop_grace_seconds=max(0.5, f.stop_margin_seconds / 2),
            on_result=on_result,
            die_with_parent=True,
            probe_stream=probes.probe,
            floor=floor,
        )

    def segment_age(camera_id: str) -> float | None:
        """Since ffmpeg's latest cut in the camera's current run: its segment list is
        appended at every cut (none yet: the run's first segment is open)."""
        try:
            runs = sorted(p for p in (s.spool.dir / "recording" / camera_id).iterdir())
            return time.time() - (runs[-1] / "list.csv").stat().st_mtime if runs else None
        except OSError:
            return None

    def spool_depth() -> int:
        return int(app.spool.stats()["pending"])

    wakeups = Listener(
        database_url(s),
        CHANNEL,
        connect_timeout=s.database.connect_timeout_seconds,
        application_name="camvault-node",
    )
    node = Node(
        node_id or s.node,
        store,
        make_recorder,
        timing,
        version=__version__,
        max_cameras=f.max_cameras,
        spool_depth=spool_depth,
        start_stagger=f.start_stagger_seconds,
        say=say or (lambda text: log.warning("%s", text)),
        prepare=probes.prepare,
        wakeups=wakeups,
        only=only,
        segment_age=segment_age,
    )
    # segments a killed earlier process of this node left in its spool, whichever node
    # records those cameras now
    root = s.spool.dir / "recording"
    if root.is_dir():
        for cam_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            leased.add(cam_dir.name)
            make_recorder(cam_dir.name, "", None).salvage()
    return node

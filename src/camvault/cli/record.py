"""``camvault record``: record the configured RTSP cameras into the spool until stopped.

Uploading is a separate stage (``camvault upload``; ``camvault run`` does both). SIGTERM or
Ctrl-C finalizes every open segment and spools it before exiting.

Like every recorder of a fleet it records a camera only while it holds the camera's lease
in PostgreSQL (``camvault.fleet``): a camera held by a ``camvault run`` node or by another
``camvault record`` is waited for, never recorded twice. Its holder name is per process
(``<node>.record-<pid>``) and it registers no node: it records exactly the cameras it was
given, takes no share of the others and is never asked to hand one over.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from camvault.cli import EXIT_INPUT, EXIT_OK
from camvault.errors import CatalogUnavailable

if TYPE_CHECKING:
    from camvault.config import Settings
    from camvault.ingest import IngestResult


def register(sub: Any) -> None:
    p = sub.add_parser(
        "record", help="record the configured RTSP cameras into the spool (stream copy)"
    )
    p.add_argument(
        "--camera",
        action="append",
        metavar="CAM",
        help="record only this camera (repeatable; default: every enabled camera with a url)",
    )
    p.set_defaults(handler=cmd_record)


def cmd_record(settings: Settings, args: argparse.Namespace) -> int:
    import signal  # here, not at the top: the full parser (`--help`) imports this module

    from camvault.app import App
    from camvault.fleet.wiring import build_node, record_holder
    from camvault.recorder import mask_url

    wanted = set(args.camera or ())
    known = {c.id for c in settings.cameras if c.url}
    unknown = sorted(wanted - known)
    if unknown:
        names = ", ".join(unknown)
        print(f"camvault: no camera with a url in the config: {names}", file=sys.stderr)
        return EXIT_INPUT
    cameras = frozenset(
        c.id for c in settings.cameras if c.url and c.enabled and (not wanted or c.id in wanted)
    )
    if not cameras:
        print("camvault: no enabled camera with a url in the config", file=sys.stderr)
        return EXIT_INPUT
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    with App.open(settings) as app:
        if not _register(app, stop):
            return EXIT_OK
        holder = record_holder(settings.node, os.getpid())
        node = build_node(app, on_result=_print_result, say=_say, node_id=holder, only=cameras)
        for cam in settings.cameras:
            if cam.id in cameras and cam.url:
                print(f"recording {cam.id} from {mask_url(cam.url)}", file=sys.stderr)
        print(
            f"camvault record: running as lease holder {holder} (each camera is recorded "
            "while its lease is ours); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        # the recorder is what fills the spool while uploads are down: watch its disk
        space = threading.Thread(
            target=app.space_watcher().run, args=(stop,), name="spool-space", daemon=True
        )
        space.start()
        node.run(stop)  # finalizes every open segment, then releases the leases
        space.join(timeout=5)
    print("camvault record: stopped", file=sys.stderr)
    return EXIT_OK


def _register(app: Any, stop: threading.Event) -> bool:
    """The config's cameras into the catalog, where their leases are: without PostgreSQL
    nothing may be recorded (another process could be recording it), so wait for it."""
    from camvault.fleet.store import FleetStore
    from camvault.fleet.wiring import register_config_cameras

    said = False
    while not stop.is_set():
        try:
            register_config_cameras(app, FleetStore(app.connector))
            return True
        except CatalogUnavailable as exc:
            if not said:
                _say(f"camvault: catalog unavailable, waiting for it to take leases: {exc}")
                said = True
            stop.wait(2.0)
    return False


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _print_result(result: IngestResult) -> None:
    seg = result.segment
    if seg is not None:
        print(
            f"spooled {seg.camera_id} {seg.start_time:%Y-%m-%dT%H:%M:%S.%f}Z "
            f"{seg.duration_seconds:.2f} s {seg.size_bytes} B run {seg.run_id}",
            flush=True,
        )
    else:
        print(f"quarantined {result.source.name}: {result.reason}", file=sys.stderr, flush=True)

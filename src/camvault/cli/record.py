"""``camvault record``: record the configured RTSP cameras into the spool until stopped.

Uploading is a separate stage (``camvault upload``; ``camvault run`` does both). SIGTERM or
Ctrl-C finalizes every open segment and spools it before exiting.
"""

from __future__ import annotations

import argparse
import signal
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
    from camvault.app import App

    wanted = set(args.camera or ())
    known = {c.id for c in settings.cameras if c.url}
    unknown = sorted(wanted - known)
    if unknown:
        names = ", ".join(unknown)
        print(f"camvault: no camera with a url in the config: {names}", file=sys.stderr)
        return EXIT_INPUT
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    with App.open(settings) as app:
        try:
            app.register_cameras()
        except CatalogUnavailable as exc:  # recording does not need the catalog right now
            print(f"camvault: catalog unavailable, recording anyway: {exc}", file=sys.stderr)
        recorder = app.recorder(on_result=_print_result)
        if wanted:
            recorder.cameras = [c for c in recorder.cameras if c.source.camera_id in wanted]
        if not recorder.cameras:
            print("camvault: no enabled camera with a url in the config", file=sys.stderr)
            return EXIT_INPUT
        for cam in recorder.cameras:
            print(f"recording {cam.source.camera_id} from {cam.source.masked}", file=sys.stderr)
        print("camvault record: running; Ctrl-C to stop", file=sys.stderr, flush=True)
        # the recorder is what fills the spool while uploads are down: watch its disk
        space = threading.Thread(
            target=app.space_watcher().run, args=(stop,), name="spool-space", daemon=True
        )
        space.start()
        recorder.run(stop)
        space.join(timeout=5)
    print("camvault record: stopped", file=sys.stderr)
    return EXIT_OK


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

"""The process the SIGKILL trials kill: ingest every file of an inbox, then drain the spool.

``python -m tests.faults.worker SETTINGS_JSON INBOX CAMERA`` prints one line per step
(``start``, ``ingested``, ``uploaded``, ``committed``, ``done``) so the test can kill it
at a chosen point. ``run`` is also called in-process for the restart after the kill.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

from camvault.app import App
from camvault.config import Settings

Emit = Callable[[str, str], None]


def run(settings: Settings, inbox: Path, camera: str, emit: Emit) -> None:
    with App.open(settings) as app:
        app.spool.lock_for_upload()
        app.spool.recover()
        ingestor = app.ingestor()
        emit("start", "")
        for path in sorted(inbox.iterdir()):
            result = ingestor.ingest(path, camera)
            emit("ingested" if result.ok else "quarantined", path.name)
        pipeline = app.pipeline(on_event=lambda kind, seg, detail: emit(kind, seg.s3_key))
        pipeline.drain(threading.Event())
        emit("done", "")


def _print(kind: str, detail: str) -> None:
    print(f"{kind} {detail}", flush=True)


if __name__ == "__main__":
    settings = Settings.model_validate_json(Path(sys.argv[1]).read_text())
    run(settings, Path(sys.argv[2]), sys.argv[3], _print)

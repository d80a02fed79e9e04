"""The process the export SIGKILL trials kill: claims one export job and runs it,
reporting each step (``claimed``, ``progress``, ``uploading``, ``uploaded``, ``done``)
and pausing after it, so the test can kill it at a chosen point (ffmpeg's output is
uploaded while it is produced, so ``progress`` and ``uploading`` may come in either order).

``python -m tests.faults.export_worker SETTINGS_JSON``
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from camvault.app import App, s3_settings
from camvault.config import Settings
from camvault.export.worker import export_runner
from camvault.storage import S3ObjectStore, make_client

PAUSE = 1.0


_SAY = threading.Lock()


def say(what: str) -> None:
    # one write per line, under a lock: the upload's thread and ffmpeg's progress reader
    # may both report at once (seen interleaved as "uploadingprogress")
    with _SAY:
        sys.stdout.write(what + "\n")
        sys.stdout.flush()
    time.sleep(PAUSE)


class ReportingStore(S3ObjectStore):
    """``uploading``: a part is about to go out (the multipart upload exists, incomplete);
    ``uploaded``: the object was completed, the row is not done yet."""

    def upload_part(self, key: str, upload_id: str, number: int, body: Any, crc: str) -> str:
        if number == 1:
            say("uploading")
        return super().upload_part(key, upload_id, number, body, crc)

    def complete_multipart(self, key: str, upload_id: str, parts: Any) -> str | None:
        out = super().complete_multipart(key, upload_id, parts)
        say("uploaded")
        return out


def main(settings: Settings) -> None:
    with App.open(settings) as app:
        s3, creds = s3_settings(settings)
        runner = export_runner(app, ReportingStore(make_client(s3, credentials=creds), s3))
        job = runner.claim()
        if job is None:
            print("nothing", flush=True)
            return
        say("claimed")
        seen = [False]

        def progress(p: float) -> None:
            if not seen[0]:
                seen[0] = True
                say("progress")

        runner.run(job, progress)
        print("done", flush=True)


if __name__ == "__main__":
    main(Settings.model_validate_json(Path(sys.argv[1]).read_text()))

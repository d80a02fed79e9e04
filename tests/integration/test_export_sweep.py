"""The multipart sweeper and clip exports (PostgreSQL + SeaweedFS): the upload of an
export whose job a live worker runs is never aborted, however old — only those of jobs
whose worker stopped beating, and other stale uploads, are."""

from __future__ import annotations

from typing import Any

import psycopg

from camvault.app import App
from camvault.export.jobs import ExportRequests, export_key
from camvault.export.worker import export_runner
from tests.integration.access_env import SEGMENT, T0, add_cameras, add_recordings

CAM = "swp"


def test_sweeper_keeps_the_upload_of_a_running_export(make_settings: Any, db_url: str) -> None:
    add_cameras(db_url, CAM)
    add_recordings(db_url, CAM, 2, start=T0)
    # max age 0: every upload nobody owns is stale at once, the export's included
    settings = make_settings(upload={"stale_multipart_seconds": 0}, api={"export_workers": 0})
    with App.open(settings) as app:
        requests = ExportRequests(app.connector, max_minutes=60)
        runner = export_runner(app)
        store = app.store()
        keys = {}
        for name in ("live", "dead"):
            job = requests.request(None, CAM, T0, T0 + SEGMENT)
            claimed = runner.claim(job.id)
            assert claimed is not None and claimed.state == "running"
            keys[name] = export_key(settings.s3.prefix, claimed)
            with psycopg.connect(db_url) as conn:
                conn.execute(
                    "UPDATE exports SET s3_key = %s WHERE id = %s", (keys[name], claimed.id)
                )
        with psycopg.connect(db_url) as conn:  # the dead one's worker stopped beating
            conn.execute(
                "UPDATE exports SET heartbeat_at = now() - interval '1 hour' WHERE s3_key = %s",
                (keys["dead"],),
            )
        keys["segment"] = f"{settings.s3.prefix}{CAM}/2026/11/20/x.mp4"
        ids = {
            n: store.create_multipart(k, metadata={}, content_type="video/mp4")
            for n, k in keys.items()
        }
        assert app.export_in_use(keys["live"]) and not app.export_in_use(keys["dead"])

        stale = app.sweeper(store).sweep()

        assert {s.upload_id for s in stale} == {ids["dead"], ids["segment"]}
        left = {u for _, u, _ in store.list_multipart_uploads(settings.s3.prefix)}
        assert left == {ids["live"]}
        store.abort_multipart_upload(keys["live"], ids["live"])

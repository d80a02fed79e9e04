"""A full spool disk, on a real small filesystem (a 24 MiB tmpfs mounted for the test) with
a live RTSP camera: below ``[spool] min_free_mb`` one alert, ``status`` and ``/healthz`` say
so; truly full, the recorder ends its run cleanly (gap recorded), ingest exits 3 naming the
disk, the journal and spooled files stay intact, nothing is deleted; space back, everything
resumes by itself and every segment reaches S3 and the catalog.

Where mounting is not allowed the test skips with the reason; the write boundary is then
still covered by ``test_injected_enospc_at_the_write_boundary`` (real ENOSPC/SQLITE_FULL
translation, injected at ``os.replace`` / the journal)."""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import camvault.spool as spool_mod
from camvault.alerts import Alert, DedupingSink
from camvault.app import App
from camvault.cli import main
from camvault.cli.admin import cmd_status
from camvault.diskspace import LOW_KIND, OK_KIND
from camvault.errors import SpoolFull
from camvault.ingest import IngestResult
from camvault.models import SegmentState
from camvault.spool import NewSegment, Spool
from tests import recording as rec
from tests.media import make_h264
from tests.rtsp_server import RtspCamera, unavailable

REASON = unavailable()


class _Sink:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "smallfs"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip()}); see the ENOSPC test")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> int:
    """Write until the filesystem refuses (ENOSPC); returns the bytes written."""
    written = 0
    chunk = b"\0" * (256 << 10)
    with path.open("wb") as f:
        try:
            while True:
                written += f.write(chunk)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return written


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.skipif(REASON is not None, reason=f"no RTSP test server: {REASON}")
def test_full_spool_disk_with_a_live_camera(
    small_fs: Path,
    make_settings: Any,
    db_url: str,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spool_dir = small_fs / "spool"
    with RtspCamera(tmp_path / "rtsp.log", user="viewer", password="pw", fps=rec.FPS) as camera:
        settings = rec.camera_settings(
            make_settings,
            camera.url,
            segment_seconds=2,
            timeout_seconds=4,
        )
        settings = settings.model_copy(
            update={"spool": settings.spool.model_copy(update={"dir": spool_dir, "min_free_mb": 8})}
        )
        cfg = tmp_path / "camvault.toml"
        rec.write_toml(settings, cfg)
        cfg.write_text(cfg.read_text().replace("[spool]\n", "[spool]\nmin_free_mb = 8\n"))
        results: list[IngestResult] = []
        sink = _Sink()
        with App.open(settings) as app:
            app.register_cameras()
            watcher = app.space_watcher(alerts=DedupingSink(sink, 3600))
            assert not watcher.check().low and sink.sent == []
            with app.recorder(on_result=results.append):
                rec.wait_for(lambda: len(results) >= 2, 60, "two recorded segments")

                # the backlog fills the disk (another writer here; footage in real life)
                _fill(small_fs / "filler.bin")
                before_full = {s.id: (s.path, s.checksum) for s in app.spool.segments()}
                for _ in range(3):
                    assert watcher.check().low
                assert [a.kind for a in sink.sent] == [LOW_KIND]  # once, not per check
                assert str(spool_dir) in sink.sent[0].message

                # the recorder cannot write: its run ends, the camera shows offline
                rec.wait_for(
                    lambda: rec.rows(
                        db_url,
                        "SELECT * FROM recorder_runs WHERE camera_id = %s AND ended_at IS NOT NULL",
                        rec.CAM,
                    ),
                    60,
                    "the recorder's run to end on the full disk",
                )
                # ingest answers a clear error naming the disk; the file stays where it is
                clip = make_h264(tmp_path / "door-1_20261120T080000Z.mp4")
                code = main(["-c", str(cfg), "ingest", "--camera", rec.CAM, str(clip)])
                err = capsys.readouterr().err
                assert code == 3, err
                assert "spool disk full" in err and str(spool_dir) in err
                assert clip.exists()

                # status and /healthz say so
                cmd_status(settings, argparse.Namespace(json=True))
                status = json.loads(capsys.readouterr().out)
                assert status["spool_disk"]["low"] is True
                from camvault.api.server import build_services

                services, close = build_services(app)
                try:
                    with pytest.raises(SpoolFull, match="spool disk"):
                        services.health_checks["spool_disk"]()
                finally:
                    close()

                # nothing was deleted and the journal is intact
                for seg_id, (path, checksum) in before_full.items():
                    assert Path(path).exists() and _sha(Path(path)) == checksum, seg_id
                with sqlite3.connect(spool_dir / "journal.sqlite3") as db:
                    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

                # space returns: everything resumes by itself
                runs_before = {r.segment.run_id for r in results if r.segment}
                (small_fs / "filler.bin").unlink()
                assert not watcher.check().low
                assert [a.kind for a in sink.sent] == [LOW_KIND, OK_KIND]
                rec.wait_for(
                    lambda: {r.segment.run_id for r in results if r.segment} - runs_before,
                    90,
                    "a segment of a new run after space returned",
                )
                code = main(["-c", str(cfg), "ingest", "--camera", rec.CAM, str(clip)])
                assert code == 0, capsys.readouterr().err
            rec.drain(app)
            left = app.spool.segments(SegmentState.QUEUED, SegmentState.UPLOADING)
            stats = app.spool.stats()
    assert left == [] and stats["pending"] == 0
    spooled = [r for r in results if r.segment is not None]
    rows = rec.recordings(db_url)
    assert len(rows) == len(spooled) + 1  # every recorded segment and the ingested clip
    for row in rows:
        s3.head_object(Bucket=bucket, Key=row["s3_key"])
    gaps = rec.rows(db_url, "SELECT * FROM recording_gaps WHERE camera_id = %s", rec.CAM)
    assert gaps, "the time the disk was full shows as a gap"
    assert list((spool_dir / "recording" / rec.CAM).iterdir()) == []  # nothing left behind


def test_injected_enospc_at_the_write_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC moving a file in, and SQLITE_FULL from the journal, become ``SpoolFull``
    naming the disk; the source file stays, no journal row is left, and the same call
    succeeds once space is back."""
    spool = Spool(tmp_path / "spool")
    src = tmp_path / "in" / "a.mp4"
    src.parent.mkdir()
    src.write_bytes(b"video")
    t = spool_mod.utcnow()
    new = NewSegment("cam", src, t, t, 1.0, "h264", 1, 1, "mp4", "cam/a.mp4")
    real_replace = os.replace

    def no_space(a: Any, b: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_mod.os, "replace", no_space)
    with pytest.raises(SpoolFull, match="spool disk full") as exc:
        spool.admit(new)
    assert str(spool.dir) in str(exc.value)
    assert src.read_bytes() == b"video" and spool.segments() == []
    with pytest.raises(SpoolFull):
        spool.quarantine(src, "bad")
    assert src.exists() and spool.quarantined() == []
    monkeypatch.setattr(spool_mod.os, "replace", real_replace)

    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    assert spool_mod._disk_full(full)
    assert not spool_mod._disk_full(sqlite3.OperationalError("locked"))

    seg = spool.admit(new)  # space is back
    assert seg.state is SegmentState.QUEUED and Path(seg.path).read_bytes() == b"video"
    spool.close()


def test_drop_watcher_keeps_the_file_while_the_disk_is_full(
    make_settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from camvault.ingest import DropWatcher

    drop = tmp_path / "drop"
    drop.mkdir()
    settings = make_settings(cameras=[{"id": "dock-2", "drop_dir": str(drop)}])
    clip = make_h264(drop / "dock-2_20261120T080000Z.mp4")
    with App.open(settings) as app:
        app.register_cameras()
        watcher = DropWatcher(app.ingestor(), {"dock-2": drop}, settle_seconds=0)

        def full(*a: Any, **kw: Any) -> Any:
            raise SpoolFull("spool disk full: test")

        monkeypatch.setattr(app.spool, "admit", full)
        assert watcher.scan_once(now=1.0) == [] and clip.exists()
        monkeypatch.undo()
        (result,) = watcher.scan_once(now=2.0)
        assert result.ok and not clip.exists()


def test_uploader_waits_out_a_full_journal(
    make_settings: Any, tmp_path: Path, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``claim`` failing with SpoolFull (SQLITE_FULL) must not kill the upload worker: it
    waits, and uploads the segment once the journal can be written again."""
    # one worker: a claim error that killed it would leave nobody to upload
    settings = make_settings(cameras=[{"id": "dock-2"}], upload={"concurrency": 1})
    clip = make_h264(tmp_path / "dock-2_20261120T080000Z.mp4")
    with App.open(settings) as app:
        app.register_cameras()
        seg = app.ingestor().ingest(clip, "dock-2").segment
        assert seg is not None
        real_claim = app.spool.claim
        refusals: list[int] = []

        def claim(**kw: Any) -> Any:
            if len(refusals) < 3:
                refusals.append(1)
                raise SpoolFull("spool disk full: test")
            return real_claim(**kw)

        monkeypatch.setattr(app.spool, "claim", claim)
        app.spool.lock_for_upload()
        stop = threading.Event()
        pipeline = app.pipeline()
        worker = threading.Thread(target=pipeline.run, args=(stop,), kwargs={"poll_seconds": 0.1})
        worker.start()
        try:
            rec.wait_for(
                lambda: app.spool.get(seg.id).state is SegmentState.COMMITTED, 60, "the commit"
            )
        finally:
            stop.set()
            worker.join()
    assert len(refusals) == 3
    s3.head_object(Bucket=bucket, Key=seg.s3_key)

"""``camvault reconcile``: rows deleted behind camvault's back are rebuilt identically from
the objects' metadata; rows whose object is gone are flagged; ``--dry-run`` writes nothing."""

from __future__ import annotations

import argparse
import json
import threading
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from camvault.app import App
from camvault.cli.reconcile import cmd_reconcile
from tests.media import make_h264

T0 = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
COLUMNS = (
    "camera_id, start_time, end_time, duration_seconds, s3_bucket, s3_key, size_bytes,"
    " checksum_algorithm, checksum, codec, width, height, storage_class, sse, etag, run_id"
)


def _rows(db_url: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=psycopg.rows.dict_row) as conn:
        rows = conn.execute(f"SELECT {COLUMNS} FROM recordings").fetchall()  # noqa: S608
    return {r["s3_key"]: r for r in rows}


def _args(**kw: Any) -> argparse.Namespace:
    base = {"dry_run": False, "no_orphans": False, "no_missing": False, "inventory": None}
    return argparse.Namespace(**{**base, "json": True, **kw})


@pytest.fixture
def archived(make_settings: Any, tmp_path: Path) -> tuple[Any, list[str]]:
    """Six segments of two cameras, archived normally."""
    settings = make_settings(s3={"prefix": "site-a"})
    keys = []
    with App.open(settings) as app:
        ingestor = app.ingestor()
        for cam in ("lobby-1", "yard-2"):
            app.catalog.upsert_camera(cam)
            for i in range(3):
                src = make_h264(tmp_path / f"{cam}-{i}.mp4", seconds=1.0 + i / 3)
                res = ingestor.ingest(src, cam, start=T0 + timedelta(minutes=5 * i, seconds=7))
                assert res.segment is not None
                keys.append(res.segment.s3_key)
        app.spool.lock_for_upload()
        assert app.pipeline().drain(threading.Event()).committed == 6
    return settings, keys


def test_orphan_scan_rebuilds_deleted_rows_identically(
    archived: tuple[Any, list[str]], db_url: str, s3: Any, capsys: Any
) -> None:
    settings, keys = archived
    bucket = settings.s3.bucket
    before = _rows(db_url)
    assert sorted(before) == sorted(keys)
    deleted = [keys[0], keys[2], keys[4]]
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM recordings WHERE s3_key = ANY(%s)", (deleted,))
    gone = keys[5]  # and one object vanishes from the bucket
    s3.delete_object(Bucket=bucket, Key=gone)
    s3.put_object(Bucket=bucket, Key="site-a/README.txt", Body=b"not footage")

    assert cmd_reconcile(settings, _args(dry_run=True)) == 1
    dry = json.loads(capsys.readouterr().out)
    assert sorted(dry["orphans"]) == sorted(deleted)
    assert dry["rebuilt"] == [] and dry["missing"] == [gone] and dry["foreign_keys"] == 1
    assert len(_rows(db_url)) == 3, "--dry-run wrote nothing"

    assert cmd_reconcile(settings, _args()) == 1  # 1: a missing object cannot be fixed
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["rebuilt"]) == sorted(deleted)
    assert report["missing"] == [gone]
    after = _rows(db_url)
    for key in deleted:
        assert after[key] == before[key], key  # every column as the pipeline wrote it

    # a second run finds only the lost object
    assert cmd_reconcile(settings, _args()) == 1
    again = json.loads(capsys.readouterr().out)
    assert again["orphans"] == [] and again["missing"] == [gone]
    assert len(_rows(db_url)) == 6


def test_orphan_scan_from_an_inventory_csv(
    archived: tuple[Any, list[str]], db_url: str, tmp_path: Path, capsys: Any
) -> None:
    settings, keys = archived
    before = _rows(db_url)
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM recordings WHERE s3_key = %s", (keys[1],))
    inv = tmp_path / "inventory.csv"
    inv.write_text(
        "".join(
            f'"{settings.s3.bucket}","{urllib.parse.quote(k)}","{before[k]["size_bytes"]}",'
            f'"2026-11-23T06:00:00.000Z"\n'
            for k in reversed(keys)
        )
    )
    assert cmd_reconcile(settings, _args(inventory=inv)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rebuilt"] == [keys[1]] and report["missing"] == []
    assert _rows(db_url)[keys[1]] == before[keys[1]]


def test_unreadable_metadata_is_reported_not_guessed(
    archived: tuple[Any, list[str]], db_url: str, s3: Any, capsys: Any
) -> None:
    settings, _ = archived
    key = "site-a/lobby-1/2026/11/23/lobby-1_20261123T070000Z.mp4"
    s3.put_object(Bucket=settings.s3.bucket, Key=key, Body=b"x", Metadata={"camera-id": "lobby-1"})
    assert cmd_reconcile(settings, _args()) == 1
    report = json.loads(capsys.readouterr().out)
    assert [u["key"] for u in report["unrebuildable"]] == [key]
    assert "x-amz-meta-start" in report["unrebuildable"][0]["reason"]
    assert key not in _rows(db_url)


@pytest.mark.parametrize(
    ("meta_camera", "meta_start", "words"),
    [
        ("yard-2", "2026-11-23T07:00:00+00:00", "camera-id 'yard-2'"),
        ("lobby-1", "2026-11-23T08:00:00+00:00", "metadata start"),
    ],
)
def test_forged_metadata_disagreeing_with_the_key_is_reported_never_inserted(
    archived: tuple[Any, list[str]],
    db_url: str,
    s3: Any,
    capsys: Any,
    meta_camera: str,
    meta_start: str,
    words: str,
) -> None:
    """An object under lobby-1's key whose headers claim yard-2 (or another start) would
    become a row yard-2's viewers can play: the key wins, the object is only reported."""
    settings, keys = archived
    good = s3.head_object(Bucket=settings.s3.bucket, Key=keys[0])["Metadata"]
    key = "site-a/lobby-1/2026/11/23/lobby-1_20261123T070000Z.mp4"
    forged = {**good, "camera-id": meta_camera, "start": meta_start}
    forged["end"] = (datetime.fromisoformat(meta_start) + timedelta(seconds=1)).isoformat()
    s3.put_object(Bucket=settings.s3.bucket, Key=key, Body=b"x", Metadata=forged)

    assert cmd_reconcile(settings, _args()) == 1
    report = json.loads(capsys.readouterr().out)
    assert [m["key"] for m in report["mismatched"]] == [key]
    assert words in report["mismatched"][0]["reason"]
    assert report["rebuilt"] == [] and report["clean"] is False
    rows = _rows(db_url)
    assert key not in rows and len(rows) == 6
    with psycopg.connect(db_url) as conn:
        n = conn.execute(
            "SELECT count(*) FROM recordings WHERE camera_id = %s AND start_time = %s",
            (meta_camera, datetime.fromisoformat(meta_start)),
        ).fetchone()
    assert n == (0,)

"""The multipart sweeper against the in-memory S3 twin (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from camvault.errors import StorageUnavailable
from camvault.models import SegmentState
from camvault.s3.memory import MemoryObjectStore
from camvault.sweeper import MultipartSweeper

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _sweeper(store: MemoryObjectStore, states: dict[str, set[str]]) -> MultipartSweeper:
    return MultipartSweeper(
        store, lambda key: states.get(key, set()), prefix="site/", max_age=timedelta(hours=1)
    )


def test_aborts_ours_and_old_foreign_uploads_keeps_the_rest() -> None:
    store = MemoryObjectStore()
    ours = store.start_upload("site/cam/a.mp4", NOW - timedelta(minutes=1))
    busy = store.start_upload("site/cam/b.mp4", NOW - timedelta(days=1))
    old = store.start_upload("site/other/c.mp4", NOW - timedelta(hours=2))
    young = store.start_upload("site/other/d.mp4", NOW - timedelta(minutes=5))
    elsewhere = store.start_upload("elsewhere/e.mp4", NOW - timedelta(days=9))
    states = {
        "site/cam/a.mp4": {SegmentState.QUEUED.value},
        "site/cam/b.mp4": {SegmentState.UPLOADING.value},
    }
    stale = _sweeper(store, states).sweep(now=NOW)
    assert sorted(s.upload_id for s in stale) == sorted([ours, old])
    assert sorted(store.uploads) == sorted([busy, young, elsewhere])


def test_dry_run_aborts_nothing() -> None:
    store = MemoryObjectStore()
    store.start_upload("site/x.mp4", NOW - timedelta(days=1))
    assert len(_sweeper(store, {}).sweep(now=NOW, dry_run=True)) == 1
    assert len(store.uploads) == 1


def test_listing_failure_surfaces_as_the_store_error() -> None:
    def fault(op: str, key: str) -> None:
        if op == "list_multipart":
            raise StorageUnavailable("S3 LIST multipart uploads failed: network", code="network")

    store = MemoryObjectStore(fault=fault)
    store.start_upload("site/x.mp4", NOW - timedelta(days=1))
    with pytest.raises(StorageUnavailable):
        _sweeper(store, {}).sweep(now=NOW)
    assert len(store.uploads) == 1

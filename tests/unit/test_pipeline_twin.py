"""The upload → commit pipeline on the twins: in-memory S3 (``s3.memory``), in-memory
PostgreSQL (``catalog.memory`` under the real ``Catalog``/``AttemptCatalog``) and a real
spool on local disk. No server; backoff is zero, so retries do not sleep."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from camvault.attempt_log import AttemptJournal, AttemptLog
from camvault.breaker import CircuitBreaker
from camvault.catalog import Catalog
from camvault.catalog.attempts import AttemptCatalog
from camvault.catalog.memory import MemoryConnector
from camvault.errors import CatalogUnavailable, StoragePermanentError, StorageUnavailable
from camvault.models import Segment, SegmentState
from camvault.pipeline import Pipeline
from camvault.retry import RetryPolicy
from camvault.s3.memory import MemoryObject, MemoryObjectStore
from camvault.spool import Spool, utcnow
from camvault.uploader import Uploader
from tests.support.spool import new_segment
from tests.support.twins import ListAlerts

NO_WAIT = RetryPolicy(max_retries=3, base_seconds=0.0, cap_seconds=0.0)


@dataclass
class World:
    spool: Spool
    store: MemoryObjectStore
    db: MemoryConnector
    alerts: ListAlerts
    pipeline: Pipeline

    def segment(self, name: str = "a.mp4", minute: int = 0, body: bytes = b"video") -> Segment:
        return self.spool.admit(new_segment(self.spool.dir.parent, name, minute, body))

    def process(self, seg: Segment) -> Segment:
        claimed = self.spool.claim(ignore_delay=True)
        assert claimed is not None and claimed.id == seg.id
        self.pipeline.process(claimed, threading.Event())
        return self.spool.get(seg.id)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield make_world(tmp_path)


def make_world(
    tmp_path: Path, *, s3_breaker: CircuitBreaker | None = None, camera: bool = True
) -> World:
    spool = Spool(tmp_path / "spool")
    store = MemoryObjectStore(bucket="b")
    db = MemoryConnector()
    catalog = Catalog(db, node="n1")
    if camera:
        catalog.upsert_camera("cam")
    alerts = ListAlerts()
    log = AttemptLog(AttemptJournal(spool.dir), AttemptCatalog(db), CircuitBreaker("PostgreSQL"))
    pipeline = Pipeline(
        spool,
        Uploader(store, conditional_writes=True),
        catalog,
        policy=NO_WAIT,
        alerts=alerts,
        node="n1",
        concurrency=2,
        rng=random.Random(0),
        attempt_log=log,
        s3_breaker=s3_breaker,
    )
    return World(spool, store, db, alerts, pipeline)


def _puts(store: MemoryObjectStore) -> int:
    return sum(op == "put" for op, _ in store.calls)


def _fail_puts(
    exc: Callable[[], Exception], times: int | None = None
) -> Callable[[str, str], None]:
    left = [times]

    def fault(op: str, key: str) -> None:
        if op == "put" and (left[0] is None or left[0] > 0):
            if left[0] is not None:
                left[0] -= 1
            raise exc()

    return fault


def _busy() -> Exception:
    return StorageUnavailable("S3 PUT failed: SlowDown (503)", code="SlowDown")


def test_object_first_then_row_then_the_file_goes(world: World) -> None:
    seg = world.segment(body=b"hello video")
    seen: dict[str, object] = {}

    def at_put(op: str, key: str) -> None:
        if op == "put":
            seen["rows_at_put"] = len(world.db.recordings)

    def at_insert(name: str) -> None:
        if name == "insert_recording":
            seen["object_at_insert"] = seg.s3_key in world.store.objects
            seen["file_at_insert"] = Path(seg.path).exists()

    world.store.fault, world.db.fault = at_put, at_insert
    done = world.process(seg)
    assert seen == {"rows_at_put": 0, "object_at_insert": True, "file_at_insert": True}
    assert done.state is SegmentState.COMMITTED and not Path(seg.path).exists()
    obj = world.store.objects[seg.s3_key]
    assert (obj.body, obj.sse, obj.storage_class) == (b"hello video", "AES256", "STANDARD")
    assert obj.metadata["checksum"] == f"sha256:{seg.checksum}"
    assert obj.metadata["camera-id"] == "cam"
    [row] = world.db.recordings.values()
    assert (row["s3_bucket"], row["s3_key"], row["checksum"]) == ("b", seg.s3_key, seg.checksum)
    assert (row["sse"], row["storage_class"], row["etag"]) == ("AES256", "STANDARD", obj.etag)
    assert row["node_id"] == "n1" and row["size_bytes"] == 11
    assert world.db.upload_attempts == {} and world.db.upload_errors == []
    assert world.alerts.sent == [] and world.pipeline.tally.committed == 1


def test_transient_errors_are_retried_and_every_attempt_is_logged(world: World) -> None:
    seg = world.segment()
    world.store.fault = _fail_puts(_busy, times=2)
    done = world.process(seg)
    assert done.state is SegmentState.COMMITTED and _puts(world.store) == 3
    assert seg.s3_key in world.store.objects and len(world.db.recordings) == 1
    rows = sorted(world.db.upload_attempts.values(), key=lambda r: r["attempt"])
    assert [(r["attempt"], r["round"], r["error_code"]) for r in rows] == [
        (1, 1, "SlowDown"),
        (2, 1, "SlowDown"),
    ]
    assert {r["round_outcome"] for r in rows} == {"succeeded"}
    assert {r["error_class"] for r in rows} == {"s3:SlowDown"}
    assert world.db.upload_errors == [] and world.alerts.sent == []


def test_exhausted_round_records_alerts_and_keeps_the_segment(world: World) -> None:
    seg = world.segment()
    world.store.fault = _fail_puts(_busy)
    before = utcnow()
    done = world.process(seg)
    assert _puts(world.store) == NO_WAIT.attempts_per_round == 4
    assert done.state is SegmentState.QUEUED and done.rounds == 1 and done.attempts == 4
    assert done.next_attempt_at is not None and done.next_attempt_at > before
    assert Path(seg.path).read_bytes() == b"video"
    assert world.store.objects == {} and world.db.recordings == {}
    [err] = world.db.upload_errors
    assert (err["segment_id"], err["attempts"], err["error_class"]) == (seg.id, 4, "s3:SlowDown")
    assert {r["round_outcome"] for r in world.db.upload_attempts.values()} == {"failed"}
    assert len(world.db.upload_attempts) == 4
    assert world.alerts.kinds() == ["upload_failed"]
    assert world.spool.claim() is None, "the redrive delay holds it"


def test_permanent_error_is_not_retried_blindly(world: World) -> None:
    seg = world.segment()
    world.store.fault = _fail_puts(
        lambda: StoragePermanentError("S3 PUT failed: AccessDenied (403)", code="AccessDenied")
    )
    done = world.process(seg)
    assert _puts(world.store) == 1
    assert done.state is SegmentState.QUEUED and done.rounds == 1
    assert [e["error_class"] for e in world.db.upload_errors] == ["s3:AccessDenied"]
    assert world.alerts.kinds() == ["upload_failed"] and Path(seg.path).exists()


def test_later_round_that_succeeds_sends_a_recovery_notice(world: World) -> None:
    seg = world.segment()
    world.store.fault = _fail_puts(_busy, times=4)
    assert world.process(seg).rounds == 1
    done = world.process(seg)
    assert done.state is SegmentState.COMMITTED and len(world.db.recordings) == 1
    assert world.alerts.kinds() == ["upload_failed", "recovered"]
    assert world.store.objects[seg.s3_key].body == b"video"


def test_different_object_at_the_key_is_held_as_a_conflict(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    seg = world.segment(body=b"ours")
    theirs = MemoryObject(b"someone else's", {"checksum": "sha256:00"}, "AES256")
    world.store.objects[seg.s3_key] = theirs
    with caplog.at_level(logging.ERROR, logger="camvault.pipeline"):
        done = world.process(seg)
    (said,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert seg.s3_key in said and "held in the spool for an operator" in said, said
    assert done.state is SegmentState.CONFLICT and Path(seg.path).read_bytes() == b"ours"
    assert world.store.objects[seg.s3_key].body == b"someone else's", "never overwritten"
    assert world.db.recordings == {}
    assert [e["error_class"] for e in world.db.upload_errors] == ["conflict"]
    assert world.alerts.kinds() == ["conflict"] and world.pipeline.tally.conflicts == 1
    assert world.spool.claim(ignore_delay=True) is None, "held for an operator"


def test_catalog_down_leaves_it_in_the_reprocess_queue_until_it_is_back(world: World) -> None:
    seg = world.segment()

    def down(name: str) -> None:
        if name == "insert_recording":
            raise CatalogUnavailable("PostgreSQL unavailable: connection refused")

    world.db.fault = down
    done = world.process(seg)
    assert done.state is SegmentState.UPLOADED and Path(seg.path).exists()
    assert seg.s3_key in world.store.objects and world.db.recordings == {}
    assert world.pipeline.tally.deferred_commits == 1
    world.db.fault = None
    assert world.pipeline.retry_commits(ignore_delay=True) == 1
    assert world.spool.get(seg.id).state is SegmentState.COMMITTED
    assert not Path(seg.path).exists() and len(world.db.recordings) == 1
    assert _puts(world.store) == 1, "the commit retry does not upload again"


def test_open_catalog_breaker_defers_without_trying(world: World) -> None:
    seg = world.segment()
    for source in ("x", "y", "z"):
        world.pipeline.pg.breaker.failure(source)
    assert world.pipeline.pg.breaker.is_open
    assert world.process(seg).state is SegmentState.UPLOADED
    assert "insert_recording" not in world.db.names()
    assert world.pipeline.retry_commits(ignore_delay=True) == 0


def test_catalog_refusing_the_row_holds_it_with_the_object(tmp_path: Path) -> None:
    w = make_world(tmp_path, camera=False)  # no camera row: the foreign key refuses it
    seg = w.segment()
    done = w.process(seg)
    assert done.state is SegmentState.CONFLICT and Path(seg.path).exists()
    assert seg.s3_key in w.store.objects and w.db.recordings == {}
    assert [e["error_class"] for e in w.db.upload_errors] == ["UnknownCamera"]
    assert w.alerts.kinds() == ["conflict"]


def test_errors_and_attempts_are_journaled_while_the_catalog_is_down(world: World) -> None:
    seg = world.segment()
    world.store.fault = _fail_puts(
        lambda: StoragePermanentError("S3 PUT failed: AccessDenied (403)", code="AccessDenied")
    )
    world.db.fault = _raise(CatalogUnavailable("PostgreSQL unavailable"))
    done = world.process(seg)
    assert done.state is SegmentState.QUEUED and Path(seg.path).exists()
    assert world.db.upload_errors == [] and world.db.upload_attempts == {}
    assert len(world.spool.pending_errors()) == 1
    world.db.fault = None
    assert world.pipeline.flush_errors() == 1 and world.spool.pending_errors() == []
    world.pipeline.attempt_log.flush()
    assert [(e["segment_id"], e["error_class"]) for e in world.db.upload_errors] == [
        (seg.id, "s3:AccessDenied")
    ]
    [attempt] = world.db.upload_attempts.values()
    assert (attempt["attempt"], attempt["round_outcome"]) == (1, "failed")


def _raise(exc: Exception) -> Callable[[str], None]:
    def fault(name: str) -> None:
        raise exc

    return fault


def test_s3_gone_as_a_whole_stops_the_round_and_holds_until_it_answers(tmp_path: Path) -> None:
    w = make_world(tmp_path, s3_breaker=CircuitBreaker("S3", failure_threshold=1, min_sources=1))
    seg = w.segment()
    w.store.fault = _fail_puts(lambda: StorageUnavailable("S3 PUT failed: network", code="network"))
    done = w.process(seg)
    assert _puts(w.store) == 1, "no retries against an endpoint that is down"
    assert w.pipeline.s3.breaker.is_open and done.state is SegmentState.QUEUED
    assert [e["error_class"] for e in w.db.upload_errors] == ["network"]
    assert w.spool.claim() is None, "held by the outage"
    w.store.fault = None
    assert w.pipeline.s3.probe_now() and not w.pipeline.s3.breaker.is_open
    again = w.spool.claim()
    assert again is not None and again.id == seg.id, "the outage's delay is lifted"
    w.pipeline.process(again, threading.Event())
    assert w.spool.get(seg.id).state is SegmentState.COMMITTED
    assert w.store.objects[seg.s3_key].sse == "AES256"


def test_a_bug_while_handling_a_segment_returns_it_to_the_queue(world: World) -> None:
    seg = world.segment()
    world.store.fault = _fail_puts(_busy, times=1)

    def buggy(kind: str, s: Segment, detail: str) -> None:
        if kind == "attempt_failed":
            raise RuntimeError("simulated bug")

    world.pipeline.on_event = buggy
    claimed = world.spool.claim()
    assert claimed is not None
    world.pipeline._process_guarded(claimed, threading.Event())
    held = world.spool.get(seg.id)
    assert held.state is SegmentState.QUEUED and held.rounds == 1 and Path(seg.path).exists()
    assert (held.last_error or "").startswith("unexpected: RuntimeError")
    assert world.db.recordings == {}


def test_drain_uploads_and_commits_every_pending_segment(world: World) -> None:
    segs = [world.segment(f"{i}.mp4", minute=5 * i, body=f"video {i}".encode()) for i in range(5)]
    world.store.fault = _fail_puts(_busy, times=3)
    tally = world.pipeline.drain()
    assert tally.committed == 5 and tally.failed_attempts == 3
    assert {s.s3_key: world.store.objects[s.s3_key].body for s in segs} == {
        s.s3_key: f"video {i}".encode() for i, s in enumerate(segs)
    }
    assert sorted(r["s3_key"] for r in world.db.recordings.values()) == sorted(
        s.s3_key for s in segs
    )
    assert all(world.spool.get(s.id).state is SegmentState.COMMITTED for s in segs)
    assert not any(Path(s.path).exists() for s in segs)


def test_drain_sends_the_next_segments_while_commits_are_slow(world: World) -> None:
    """A drain's uploads tend to end together; their commits must not leave the link idle:
    while the first commits are held, the other segments are still sent — never more
    than ``concurrency`` (2) at once."""
    segs = [world.segment(f"{i}.mp4", minute=5 * i) for i in range(4)]
    all_sent = threading.Event()
    lock = threading.Lock()
    sending, peak, sent = [0], [0], [0]
    upload = world.pipeline.uploader.upload

    def counted(*args: Any, **kw: Any) -> Any:
        with lock:
            sending[0] += 1
            peak[0] = max(peak[0], sending[0])
        try:
            time.sleep(0.05)  # a PUT takes a while: lets other workers' PUTs overlap it
            return upload(*args, **kw)
        finally:
            with lock:
                sending[0] -= 1
                sent[0] += 1
                if sent[0] == len(segs):
                    all_sent.set()

    sent_before_first_commit: list[bool] = []

    def slow_commit(name: str) -> None:
        if name == "insert_recording" and not sent_before_first_commit:
            # the first commit waits (at most 10 s) for every segment to have been sent
            sent_before_first_commit.append(all_sent.wait(10))

    world.pipeline.uploader.upload = counted  # type: ignore[method-assign]
    world.db.fault = slow_commit
    tally = world.pipeline.drain()
    assert sent_before_first_commit == [True], "a slow commit held up the other uploads"
    assert peak[0] == world.pipeline.concurrency == 2
    assert tally.committed == 4
    assert all(world.spool.get(s.id).state is SegmentState.COMMITTED for s in segs)


def test_a_replayed_commit_is_one_row(world: World) -> None:
    seg = world.segment()
    done = world.process(seg)
    assert world.pipeline.commit(done) is True, "the same object again: no second row"
    assert len(world.db.recordings) == 1
    assert world.pipeline.tally.committed == 2 and world.pipeline.tally.conflicts == 0

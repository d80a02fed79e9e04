"""Leases, nodes and shared alert state against the real PostgreSQL (``catalog/fleet.sql``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from camvault.alerts import Alert, DedupingSink
from camvault.catalog import Catalog, PsycopgConnector
from camvault.catalog.listen import Listener
from camvault.errors import InputError, NotFound
from camvault.fleet.alert_state import PgAlertState
from camvault.fleet.store import FleetStore, Released
from camvault.fleet.wakeups import CHANNEL
from camvault.models import Recording

URL = "rtsp://viewer:pw@127.0.0.1:8554/cam"


@pytest.fixture
def connector(db_url: str) -> Iterator[PsycopgConnector]:
    c = PsycopgConnector(db_url, max_size=4)
    yield c
    c.close()


@pytest.fixture
def store(connector: PsycopgConnector) -> FleetStore:
    s = FleetStore(connector)
    for i in range(4):
        s.upsert_camera(f"cam-{i}", url=URL, segment_seconds=2)
    s.upsert_camera("drop-in")  # no url: never leased
    return s


def test_claims_are_exclusive_and_fenced(store: FleetStore, db_url: str) -> None:
    a = store.claim("a", 3, ttl=30)
    assert [epoch for _, epoch in a] == [1, 1, 1]
    b = store.claim("b", 5, ttl=30)
    assert len(b) == 1 and not {c for c, _ in a} & {c for c, _ in b}
    assert store.claim("c", 5, ttl=30) == []
    with psycopg.connect(db_url) as conn:
        holders = conn.execute(
            "SELECT camera_id, holder FROM camera_leases ORDER BY camera_id"
        ).fetchall()
    assert [h for _, h in holders].count("a") == 3 and "drop-in" not in dict(holders)
    renewed = store.renew("a", 30)
    assert sorted(h.camera_id for h in renewed) == sorted(c for c, _ in a)
    assert all(h.url == URL and h.segment_seconds == 2 for h in renewed)


def test_concurrent_claims_never_share_a_camera(store: FleetStore) -> None:
    store.renew("x", 30)  # creates the lease rows
    got: dict[str, list[tuple[str, int]]] = {}
    barrier = threading.Barrier(4)

    def claim(node: str) -> None:
        barrier.wait()
        got[node] = store.claim(node, 4, ttl=30)

    threads = [threading.Thread(target=claim, args=(f"n{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cams = [c for claimed in got.values() for c, _ in claimed]
    assert sorted(cams) == [f"cam-{i}" for i in range(4)]  # each exactly once


def test_expiry_is_decided_by_the_database_clock(store: FleetStore) -> None:
    (cam, epoch), *_ = store.claim("a", 1, ttl=1)
    assert store.claim("b", 4, ttl=30) and cam not in {c for c, _ in store.claim("b", 4, 30)}
    time.sleep(1.2)
    assert store.renew("a", 30) == []  # expired: not renewed, must be claimed again
    again = dict(store.claim("b", 4, ttl=30))
    assert again[cam] == epoch + 1  # new holder, new fencing number
    assert store.release("a", cam, epoch, 30) is None  # the old holder cannot release it


def _beat(store: FleetStore, *nodes: str) -> None:
    for n in nodes:
        store.heartbeat(n, version="0", max_cameras=0, spool_depth=0, cameras_held=0, last_error="")


def _heard(listener: Listener, payload: str) -> bool:
    """Did ``payload`` arrive (within 5 s)? Other notifications on the channel are skipped."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if payload in listener.wait(max(0.01, deadline - time.monotonic())):
            return True
    return False


def test_orderly_handoff_passes_the_lease_in_the_release(store: FleetStore, db_url: str) -> None:
    _beat(store, "a", "b")
    store.claim("a", 4, ttl=30)
    heard_a, heard_b = Listener(db_url, CHANNEL), Listener(db_url, CHANNEL)
    try:
        heard_a.wait(0), heard_b.wait(0)  # connected and listening
        ((cam, url),) = store.request_handoff("b", donor="a")
        assert url == URL
        assert _heard(heard_a, "a")  # the holder is woken: it stops now, not at its renewal
        assert store.view("b", 30).incoming == 1
        held = {h.camera_id: h for h in store.renew("a", 30)}
        assert held[cam].handoff_to == "b"
        assert store.claim("b", 1, ttl=30) == []  # still a's until it releases
        epoch = held[cam].epoch
        # the release passes the lease to the asker in the same transaction, and wakes it
        assert store.release("a", cam, epoch, 30) == Released(cam, "b", epoch + 1)
        assert _heard(heard_b, "b")
    finally:
        heard_a.close(), heard_b.close()
    assert [(h.camera_id, h.epoch, h.handoff_to) for h in store.renew("b", 30)] == [
        (cam, epoch + 1, None)
    ]
    assert cam not in {h.camera_id for h in store.renew("a", 30)}
    assert store.view("b", 30).incoming == 0
    assert store.release("a", cam, epoch, 30) is None  # a stale holder releases nothing


def test_handoff_to_a_dead_node_frees_the_lease(store: FleetStore) -> None:
    _beat(store, "a")
    store.claim("a", 4, ttl=30)
    ((cam, _),) = store.request_handoff("gone", donor="a")  # never heartbeat: not live
    epoch = {h.camera_id: h.epoch for h in store.renew("a", 30)}[cam]
    assert store.release("a", cam, epoch, 30) == Released(cam, None, epoch)
    assert store.claim("c", 4, ttl=30) == [(cam, epoch + 1)]  # anyone's at once


def _last_end(db_url: str, cam: str) -> datetime | None:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT last_end FROM camera_leases WHERE camera_id = %s", (cam,)
        ).fetchone()
    assert row is not None
    value: datetime | None = row[0]
    return value


def test_the_last_segment_end_goes_with_the_lease(store: FleetStore, db_url: str) -> None:
    """Renewals keep the end of the holder's latest segment (never moving it back), the
    release writes its last one, and the next holder reads it with the lease — handed over
    or claimed; a holder whose epoch is gone writes nothing."""
    _beat(store, "a", "b")
    store.claim("a", 4, ttl=30)
    t = datetime(2026, 11, 29, 1, 5, 3, 250_000, tzinfo=UTC)
    held = {h.camera_id: h for h in store.renew("a", 30, {"cam-0": t, "cam-1": t, "nope": t})}
    assert held["cam-0"].last_end == t and held["cam-2"].last_end is None
    held = {h.camera_id: h for h in store.renew("a", 30, {"cam-0": t - timedelta(seconds=9)})}
    assert held["cam-0"].last_end == t  # a late renewal does not move it back
    # hand-off: the release writes the old holder's last end, the heir renews it
    ((cam, _),) = store.request_handoff("b", donor="a")
    assert cam == "cam-0"
    epoch = held[cam].epoch
    end = t + timedelta(seconds=4.2)
    assert store.release("a", cam, epoch, 30, end) == Released(cam, "b", epoch + 1)
    (got,) = [h for h in store.renew("b", 30) if h.camera_id == cam]
    assert (got.epoch, got.last_end) == (epoch + 1, end)
    # fencing: the old epoch writes nothing, by release or renewal
    later = end + timedelta(seconds=60)
    assert store.release("a", cam, epoch, 30, later) is None
    assert cam not in {h.camera_id for h in store.renew("a", 30, {cam: later})}
    assert _last_end(db_url, cam) == end
    # a release without an end (never recorded) keeps what was there; a claim reads it
    assert store.release("b", cam, epoch + 1, 30, None) == Released(cam, None, epoch + 1)
    assert _last_end(db_url, cam) == end
    assert store.claim_named("c", [cam], ttl=30) == [(cam, epoch + 2)]
    assert [h.last_end for h in store.renew("c", 30)] == [end]


def test_record_claims_named_cameras_and_is_never_asked_to_hand_over(
    store: FleetStore,
) -> None:
    _beat(store, "a")
    assert store.claim("a", 1, ttl=30) == [("cam-0", 1)]
    got = store.claim_named("host.record-7", ["cam-0", "cam-1", "drop-in", "nope"], ttl=30)
    assert got == [("cam-1", 1)]  # held, url-less and unknown cameras are not taken
    assert store.claim_named("host.record-8", ["cam-1"], ttl=30) == []
    view = store.view("b", 30)
    assert view.held == {"a": 1} and view.free == 2  # no donor: it holds what it was told


def test_nodes_heartbeat_drain_and_view(store: FleetStore) -> None:
    assert (
        store.heartbeat(
            "a", version="0.1", max_cameras=0, spool_depth=3, cameras_held=2, last_error=""
        )
        is False
    )
    store.heartbeat(
        "b", version="0.1", max_cameras=9, spool_depth=0, cameras_held=0, last_error="x"
    )
    store.claim("a", 2, ttl=30)
    view = store.view("b", 30)
    assert (view.live_nodes, view.cameras, view.free, view.held) == (2, 4, 2, {"a": 2})
    store.set_draining("b", True)
    assert (
        store.heartbeat(
            "b", version="0.1", max_cameras=9, spool_depth=0, cameras_held=0, last_error=""
        )
        is True
    )
    assert store.view("b", 30).live_nodes == 1
    nodes = {n["node_id"]: n for n in store.nodes(30)}
    assert (
        nodes["a"]["alive"] and len(nodes["a"]["cameras"]) == 2 and nodes["a"]["spool_depth"] == 3
    )
    with pytest.raises(NotFound):
        store.set_draining("nope", True)


def test_camera_management(store: FleetStore, connector: PsycopgConnector) -> None:
    cam = store.update_camera("cam-0", enabled=False)
    assert not cam.enabled and cam.url == URL
    assert store.update_camera("cam-0", clear_url=True).url is None
    with pytest.raises(InputError, match="rtsp"):
        store.upsert_camera("cam-9", url="http://x")
    with pytest.raises(InputError):
        store.upsert_camera("bad id")
    store.renew("a", 30)
    store.remove_camera("cam-1")  # no footage: gone, lease row with it
    assert store.get_camera("cam-1") is None
    assert "cam-1" not in {r["camera_id"] for r in store.leases()}
    _commit(Catalog(connector, node="node-7"), "cam-2")
    with pytest.raises(InputError, match="disable"):
        store.remove_camera("cam-2")
    with pytest.raises(NotFound):
        store.remove_camera("cam-1")


def _commit(catalog: Catalog, camera_id: str) -> Recording:
    start = datetime.now(UTC).replace(microsecond=0)
    rec = Recording(
        camera_id=camera_id, start_time=start, end_time=start + timedelta(seconds=2),
        duration_seconds=2.0, s3_bucket="b", s3_key=f"{camera_id}/x.mp4", size_bytes=1,
        checksum_algorithm="sha256", checksum="0" * 64, codec="h264", width=1, height=1,
        storage_class="STANDARD", sse="AES256", etag="e",
    )  # fmt: skip
    return catalog.commit_recording(rec)[0]


def test_every_row_names_its_node(store: FleetStore, connector: PsycopgConnector) -> None:
    row = _commit(Catalog(connector, node="node-7"), "cam-3")
    assert row.node_id == "node-7"


def test_policies_let_the_service_role_lease(store: FleetStore, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("SET ROLE camvault_service")
        conn.execute(
            "INSERT INTO camera_leases (camera_id) VALUES ('cam-0') ON CONFLICT DO NOTHING"
        )
        n = conn.execute("UPDATE camera_leases SET holder = 'z' RETURNING 1").fetchall()
        assert len(n) == 1
        conn.execute("SET ROLE camvault_api")
        assert conn.execute("SELECT count(*) FROM camera_leases").fetchone() == (0,)  # no admin


class _Sink:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)


def _alert(kind: str, node: str) -> Alert:
    return Alert(kind, "cam-0", "seg", "k", "E", "boom", 4, node, datetime.now(UTC))


def test_alert_dedupe_is_shared_between_processes(connector: PsycopgConnector) -> None:
    """Two nodes (two sinks, two state objects, one database): one alert per interval."""
    out = _Sink()
    a = DedupingSink(out, 3600, store=PgAlertState(connector))
    b = DedupingSink(out, 3600, store=PgAlertState(connector))
    a.send(_alert("upload_failed", "a"))
    b.send(_alert("upload_failed", "b"))
    b.send(_alert("upload_failed", "b"))
    assert [x.node for x in out.sent] == ["a"]
    assert a.down_cameras() == ["cam-0"]
    b.send(_alert("recovered", "b"))
    assert out.sent[-1].kind == "recovered" and out.sent[-1].extra["suppressed"] == 2
    a.send(_alert("recovered", "a"))  # already recovered: nothing to say
    assert len(out.sent) == 2 and b.down_cameras() == []
    zero = DedupingSink(out, 0, store=PgAlertState(connector))
    zero.send(_alert("upload_failed", "a"))
    zero.send(_alert("upload_failed", "a"))
    assert len(out.sent) == 4

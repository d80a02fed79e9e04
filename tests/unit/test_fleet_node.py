"""The node's supervisor and keeper with a fake store and fake recorders (pure logic):
a camera stops at the lease deadline by the local clock when renewals fail, and a hand-off
releases the lease only after the recorder finished."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from camvault.errors import CatalogUnavailable
from camvault.fleet.leases import LeaseTiming
from camvault.fleet.node import HANDOFF_MIN_RUN, HANDOFF_MIN_SEGMENT, Node
from camvault.fleet.running import MAX_FLOOR_LEAD, handed_floor
from camvault.fleet.store import FleetView, Held, Released
from camvault.recorder.timeline import Timeline


class FakeStore:
    def __init__(self, cameras: list[str]) -> None:
        self.cameras = cameras
        self.holder: dict[str, str] = {}
        self.handoff: dict[str, str] = {}
        self.down = False
        self.draining = False
        self.released: list[str] = []
        self.events: list[str] = []
        self.live = 1  # live nodes in the view
        self.last_end: dict[str, datetime] = {}
        self.released_ends: list[datetime | None] = []  # what each release carried
        self.seg = 2  # every camera's segment seconds

    def _check(self) -> None:
        if self.down:
            raise CatalogUnavailable("cut off")

    def node_started(self, node_id: str) -> None:
        self._check()

    def heartbeat(self, node_id: str, **kw: Any) -> bool:
        self._check()
        return self.draining

    def renew(self, node_id: str, ttl: float, ends: Any = None) -> list[Held]:
        self._check()
        for c, end in (ends or {}).items():
            if self.holder.get(c) == node_id:
                self.last_end[c] = max(end, self.last_end.get(c, end))
        return [
            Held(c, 1, "rtsp://cam/" + c, self.seg, self.handoff.get(c), self.last_end.get(c))
            for c, h in self.holder.items()
            if h == node_id
        ]

    def view(self, node_id: str, ttl: float) -> FleetView:
        self._check()
        free = sum(1 for c in self.cameras if c not in self.holder)
        held: dict[str, int] = {}
        for h in self.holder.values():
            held[h] = held.get(h, 0) + 1
        return FleetView(self.live, len(self.cameras), free, held)

    def claim(self, node_id: str, n: int, ttl: float) -> list[tuple[str, int]]:
        self._check()
        free = [c for c in self.cameras if c not in self.holder][:n]
        for c in free:
            self.holder[c] = node_id
        return [(c, 1) for c in free]

    def request_handoff(self, node_id: str, donor: str, n: int = 1) -> list[tuple[str, str]]:
        return []

    def claim_named(self, node_id: str, cameras: list[str], ttl: float) -> list[tuple[str, int]]:
        self._check()
        free = [c for c in cameras if c in self.cameras and c not in self.holder]
        for c in free:
            self.holder[c] = node_id
        return [(c, 1) for c in free]

    def release(
        self, node_id: str, camera_id: str, epoch: int, ttl: float, last_end: Any = None
    ) -> Released:
        self._check()
        self.events.append(f"release {camera_id}")
        self.released_ends.append(last_end)
        if last_end is not None:
            self.last_end[camera_id] = max(last_end, self.last_end.get(camera_id, last_end))
        self.released.append(camera_id)
        heir = self.handoff.pop(camera_id, None)  # a hand-off: the lease passes to it
        if heir is None:
            self.holder.pop(camera_id, None)
        else:
            self.holder[camera_id] = heir
        return Released(camera_id, heir, epoch)


class FakeRecorder:
    def __init__(self, cam: str, log: list[str], floor: datetime | None = None) -> None:
        self.cam, self.log = cam, log
        self.finish = threading.Event()  # the test decides when "finalizing" is over
        self.floor = floor  # as handed to make_recorder
        self.timeline = Timeline()  # the real one: the node reads its floor

    def run(self, stop: threading.Event) -> None:
        self.log.append(f"start {self.cam}")
        stop.wait()
        self.finish.wait(5)
        self.log.append(f"stopped {self.cam}")


def _node(
    store: FakeStore, clock: list[float], name: str = "a"
) -> tuple[Node, dict[str, FakeRecorder]]:
    recs: dict[str, FakeRecorder] = {}

    def make(cam: str, url: str, seg: int | None, floor: datetime | None) -> Any:
        recs[cam] = FakeRecorder(cam, store.events, floor)
        return recs[cam]

    node = Node(name, store, make, LeaseTiming(6, 2), clock=lambda: clock[0])  # type: ignore[arg-type]
    return node, recs


def _recording(
    store: FakeStore, clock: list[float], name: str = "a"
) -> tuple[Node, dict[str, FakeRecorder]]:
    """A node that registered, claimed its cameras and started their recorders."""
    node, recs = _node(store, clock, name)
    node.tick()  # the first round only registers the node
    node.tick()  # claims
    node.supervise()
    return node, recs


def _wait(cond: Any) -> None:
    for _ in range(500):
        if cond():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition not reached")


def test_cut_off_node_stops_at_the_deadline_not_before() -> None:
    store = FakeStore(["c1", "c2"])
    clock = [100.0]
    node, recs = _node(store, clock)
    node.tick()  # the first round only registers the node
    node.tick()  # claims both, renewed at t=100 → deadline 104
    node.supervise()
    assert node.recording() == ["c1", "c2"]
    store.down = True
    clock[0] = 102.0
    node.tick()  # renewal fails: nothing changes yet
    node.supervise()
    assert node.recording() == ["c1", "c2"]
    clock[0] = 104.0  # ttl - margin after the last successful renewal was sent
    node.supervise()
    assert node.recording() == []  # both told to stop, 2 s before the lease can expire
    for r in recs.values():
        r.finish.set()
    _wait(lambda: store.events.count("stopped c1") + store.events.count("stopped c2") == 2)
    node.supervise()
    assert store.released == []  # a lost lease is not "released": it simply expires


def test_handoff_releases_only_after_the_recorder_finished() -> None:
    store = FakeStore(["c1"])
    clock = [0.0]
    node, recs = _recording(store, clock)
    store.handoff["c1"] = "b"
    node.tick()  # the renewal says: hand c1 to b …
    node.supervise()
    assert node.recording() == ["c1"]  # … but not within ffmpeg's first seconds
    clock[0] = HANDOFF_MIN_RUN
    node.supervise()
    assert node.recording() == []
    node.tick()
    assert store.released == []  # still finalizing its open segment
    recs["c1"].finish.set()
    _wait(lambda: "stopped c1" in store.events)
    node.supervise()  # sees the thread ended: queue the release
    node.tick()
    assert store.events[-2:] == ["stopped c1", "release c1"]


def test_shutdown_finalizes_then_releases() -> None:
    store = FakeStore(["c1"])
    node, recs = _node(store, [0.0])
    node.tick()
    node.tick()
    node.supervise()
    recs["c1"].finish.set()
    node.shutdown()
    node.tick()
    assert store.events == ["start c1", "stopped c1", "release c1"]


def test_drain_hands_everything_back_in_order_and_claims_nothing() -> None:
    store = FakeStore(["c1", "c2"])
    node, recs = _node(store, [0.0])
    node.tick()
    node.tick()
    node.supervise()
    store.draining = True
    node.tick()
    node.supervise()
    assert node.recording() == []
    for r in recs.values():
        r.finish.set()
    _wait(lambda: store.events.count("stopped c1") + store.events.count("stopped c2") == 2)
    node.supervise()
    node.tick()
    assert sorted(store.released) == ["c1", "c2"]
    node.tick()
    node.supervise()
    assert store.holder == {} and node.recording() == []  # drained: claims nothing


def test_a_lease_passed_to_us_mid_round_is_not_asked_for_twice() -> None:
    """Balancing counts our leases as of the fleet view: a hand-off completed between the
    renewal and the view is ours already, not a reason to ask another node."""
    store = FakeStore(["c1", "c2", "c3", "c4", "c5"])
    store.holder.update({"c1": "b", "c2": "b", "c3": "b", "c4": "b", "c5": "a"})
    store.live = 2  # a's share: 3
    asked: list[str] = []
    store.request_handoff = lambda node, donor, n=1: asked.append(donor) or []  # type: ignore[method-assign]
    node, _ = _node(store, [0.0])
    node.tick()  # registers
    renew = store.renew

    def renew_then_pass(node_id: str, ttl: float, ends: Any = None) -> list[Held]:
        held = renew(node_id, ttl, ends)
        store.holder["c1"] = "a"  # b's release passed c1 to us just after our renewal
        return held

    store.renew = renew_then_pass  # type: ignore[method-assign]
    node.tick()  # the view: a holds 2, b 3 — within one: nothing to ask (by the renewal: 1)
    assert asked == []


def test_only_mode_claims_exactly_its_cameras_and_takes_no_share() -> None:
    store = FakeStore(["c1", "c2", "c3"])
    store.holder["c2"] = "other"
    said: list[str] = []
    node = Node(
        "host.record-1",
        store,  # type: ignore[arg-type]
        lambda cam, url, seg, floor: FakeRecorder(cam, store.events),  # type: ignore[arg-type,return-value]
        LeaseTiming(6, 2),
        only=frozenset({"c1", "c2"}),
        say=said.append,
    )
    store.leases = lambda: [  # type: ignore[attr-defined]
        {"camera_id": "c2", "holder": "other", "live": True, "recordable": True, "enabled": True}
    ]
    store.heartbeat = None  # type: ignore[assignment,method-assign]  # registers no node
    node.tick()  # no registering round: claims at once
    node.supervise()
    assert node.recording() == ["c1"] and store.holder == {"c2": "other", "c1": "host.record-1"}
    assert said == ["node host.record-1: waiting for the lease of c2 (held by other): "
                    "records it once free"]  # fmt: skip
    node.tick()
    assert len(said) == 1  # said once, not every round


def test_an_ended_recorder_releases_without_waiting_for_a_supervisor_pass() -> None:
    store = FakeStore(["c1"])
    clock = [0.0]
    node, recs = _recording(store, clock)
    store.handoff["c1"] = "b"
    node.tick()
    clock[0] = HANDOFF_MIN_RUN
    node.supervise()  # told to stop
    recs["c1"].finish.set()
    _wait(lambda: "stopped c1" in store.events)
    _wait(lambda: node._releases == [("c1", 1)])  # queued by the ending thread itself
    assert node._wake.is_set()  # and the keeper woken for it


def test_no_hand_off_just_after_a_cut() -> None:
    """Keys name a segment by its start second: the last segment before a hand-off is at
    least HANDOFF_MIN_SEGMENT long, so the next holder's first cannot share its second."""
    store = FakeStore(["c1"])
    clock = [0.0]
    node, recs = _recording(store, clock)
    ages = {"c1": 0.3}
    node.segment_age = ages.get
    store.handoff["c1"] = "b"
    node.tick()
    clock[0] = HANDOFF_MIN_RUN
    node.supervise()
    assert node.recording() == ["c1"]  # ffmpeg cut 0.3 s ago: keeps recording
    ages["c1"] = HANDOFF_MIN_SEGMENT
    node.supervise()
    assert node.recording() == []
    recs["c1"].finish.set()


def _recorded(rec: FakeRecorder, start: datetime, seconds: float) -> datetime:
    """The fake recorder placed a segment: its timeline ends there now."""
    return rec.timeline.advance(start, seconds)


def test_the_last_segment_end_goes_with_the_lease_to_the_next_holder() -> None:
    """Keys name segments by start second and each recorder anchors its run on its own
    clock: the old holder's release carries the end of its last segment (renewals keep it
    too, for a failover), and the next holder's recorder starts nothing before it."""
    store = FakeStore(["c1"])
    clock = [0.0]
    a, recs_a = _recording(store, clock)
    assert recs_a["c1"].floor is None  # nobody recorded c1 before
    now = datetime.now(UTC)
    first = _recorded(recs_a["c1"], now - timedelta(seconds=6), 4.0)
    a.tick()
    assert store.last_end == {"c1": first}  # the renewal kept it
    last = _recorded(recs_a["c1"], first, 1.3)
    store.handoff["c1"] = "b"
    a.tick()
    clock[0] = HANDOFF_MIN_RUN
    a.supervise()
    recs_a["c1"].finish.set()
    _wait(lambda: a._releases == [("c1", 1)])  # queued by the ended recorder's thread
    a.tick()
    assert store.events[-1] == "release c1" and store.released_ends == [last]
    _, recs_b = _recording(store, clock, "b")  # claims c1
    assert recs_b["c1"].floor == last
    for r in (*recs_a.values(), *recs_b.values()):
        r.finish.set()


def test_a_camera_restarted_on_the_same_node_starts_after_its_own_last_segment() -> None:
    """A settings change restarts the recorder without a release: the new one starts
    after the old one's last segment, not after the (older) one the last renewal kept."""
    store = FakeStore(["c1"])
    clock = [0.0]
    node, recs = _recording(store, clock)
    old = recs["c1"]
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    end = _recorded(old, base, 2.0)
    store.seg = 4
    node.tick()  # (the renewal keeps ``end``)
    _recorded(old, end, 0.5)  # the stopping recorder finalizes its open segment, 0.5 s
    node.supervise()  # settings changed: stopped, not released
    old.finish.set()
    _wait(lambda: node.supervise() or recs["c1"] is not old)  # restarted once it ended
    # after that segment, and not in the second it began (keys name segments by it)
    assert recs["c1"].floor == base + timedelta(seconds=3) and store.released == []
    recs["c1"].finish.set()


def test_a_floor_ahead_of_our_clock_is_not_waited_for() -> None:
    """A last_end in our future is the previous holder's clock running ahead: starting
    after it would shift the whole run; a floor just behind our clock is taken."""
    now = datetime(2026, 11, 29, 1, 5, 3, tzinfo=UTC)
    assert handed_floor("c1", None, now) is None
    assert handed_floor("c1", now - timedelta(seconds=1), now) == now - timedelta(seconds=1)
    near = now + MAX_FLOOR_LEAD
    assert handed_floor("c1", near, now) == near
    assert handed_floor("c1", near + timedelta(milliseconds=1), now) is None

"""The node's supervisor and keeper with a fake store and fake recorders (pure logic):
a camera stops at the lease deadline by the local clock when renewals fail, and a hand-off
releases the lease only after the recorder finished."""

from __future__ import annotations

import threading
from typing import Any

from camvault.errors import CatalogUnavailable
from camvault.fleet.leases import LeaseTiming
from camvault.fleet.node import HANDOFF_MIN_RUN, HANDOFF_MIN_SEGMENT, Node
from camvault.fleet.store import FleetView, Held, Released


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

    def _check(self) -> None:
        if self.down:
            raise CatalogUnavailable("cut off")

    def node_started(self, node_id: str) -> None:
        self._check()

    def heartbeat(self, node_id: str, **kw: Any) -> bool:
        self._check()
        return self.draining

    def renew(self, node_id: str, ttl: float) -> list[Held]:
        self._check()
        return [
            Held(c, 1, "rtsp://cam/" + c, 2, self.handoff.get(c))
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

    def release(self, node_id: str, camera_id: str, epoch: int, ttl: float) -> Released:
        self._check()
        self.events.append(f"release {camera_id}")
        self.released.append(camera_id)
        self.holder.pop(camera_id, None)
        self.handoff.pop(camera_id, None)
        return Released(camera_id, None, epoch)


class FakeRecorder:
    def __init__(self, cam: str, log: list[str]) -> None:
        self.cam, self.log = cam, log
        self.finish = threading.Event()  # the test decides when "finalizing" is over

    def run(self, stop: threading.Event) -> None:
        self.log.append(f"start {self.cam}")
        stop.wait()
        self.finish.wait(5)
        self.log.append(f"stopped {self.cam}")


def _node(store: FakeStore, clock: list[float]) -> tuple[Node, dict[str, FakeRecorder]]:
    recs: dict[str, FakeRecorder] = {}

    def make(cam: str, url: str, seg: int | None) -> Any:
        recs[cam] = FakeRecorder(cam, store.events)
        return recs[cam]

    node = Node("a", store, make, LeaseTiming(6, 2), clock=lambda: clock[0])  # type: ignore[arg-type]
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
    node, recs = _node(store, clock)
    node.tick()
    node.tick()
    node.supervise()
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

    def renew_then_pass(node_id: str, ttl: float) -> list[Held]:
        held = renew(node_id, ttl)
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
        lambda cam, url, seg: FakeRecorder(cam, store.events),  # type: ignore[arg-type,return-value]
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
    node, recs = _node(store, clock)
    node.tick()
    node.tick()
    node.supervise()
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
    node, recs = _node(store, clock)
    ages = {"c1": 0.3}
    node.segment_age = ages.get
    node.tick()
    node.tick()
    node.supervise()
    store.handoff["c1"] = "b"
    node.tick()
    clock[0] = HANDOFF_MIN_RUN
    node.supervise()
    assert node.recording() == ["c1"]  # ffmpeg cut 0.3 s ago: keeps recording
    ages["c1"] = HANDOFF_MIN_SEGMENT
    node.supervise()
    assert node.recording() == []
    recs["c1"].finish.set()

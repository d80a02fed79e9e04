"""A node of the fleet: claims, renews and releases camera leases, and records exactly the
cameras whose lease it holds.

Two threads, so that a hung database can never delay a stop:

- the **keeper** talks to PostgreSQL every ``ttl/3`` (faster while a hand-off is under
  way): heartbeat, renew, claim, ask for / perform hand-offs, release. Each successful
  renewal moves the camera's local deadline to ``sent + ttl - margin`` (monotonic clock);
- the **supervisor** (``run``'s own thread) never waits on the network: every ``poll``
  seconds, and at once when the keeper got a new lease, it starts a recorder for each camera it may
  record and stops every recorder whose deadline has passed, whose lease was lost, or
  which is to be handed off. A camera stopped in order (hand-off, drain, shutdown) is
  released only after its recorder thread ended, i.e. after its open segment was
  finalized and spooled — the ending thread queues the release and wakes the keeper.

A hand-off costs the camera the time between the old holder's last frame and the new
holder's first keyframe, so nothing on that path waits for a poll: the asking node wakes
the holder (NOTIFY), the holder's release passes the lease to the asker in the same
transaction and wakes it (``wakeups``: a third thread LISTENing), and the asker probed
the stream beforehand (``prepare``). Polling stays as the fallback for lost wake-ups.

With ``only`` (``camvault record``) it claims exactly those cameras whenever free, and
registers no node row: it takes no share and is asked for no hand-off.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from camvault.errors import CamvaultError
from camvault.fleet import metrics as m
from camvault.fleet.leases import LeaseTiming, balance, deadline, share
from camvault.fleet.running import (
    HANDOFF_MIN_RUN,
    HANDOFF_MIN_SEGMENT,
    Grant,
    Running,
    handed_floor,
    latest_ends,
    waiting_text,
)
from camvault.fleet.store import FleetStore, Held
from camvault.fleet.wakeups import Wakeups, listen
from camvault.recorder import CameraRecorder

log = logging.getLogger(__name__)

# (camera id, url, segment seconds, floor: nothing starts before it) → the camera's
# supervised recorder
MakeRecorder = Callable[[str, str, int | None, datetime | None], CameraRecorder]


class Node:
    """A fleet node (see the module docstring): a keeper thread holds camera leases in PostgreSQL,
    ``run`` starts and stops recorders to match them."""

    def __init__(
        self,
        node_id: str,
        store: FleetStore,
        make_recorder: MakeRecorder,
        timing: LeaseTiming,
        *,
        version: str = "",
        max_cameras: int = 0,
        spool_depth: Callable[[], int] = lambda: 0,
        start_stagger: float = 0.0,
        poll_seconds: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        say: Callable[[str], None] = lambda text: log.warning("%s", text),
        prepare: Callable[[str], None] = lambda url: None,
        wakeups: Wakeups | None = None,
        only: frozenset[str] | None = None,
        segment_age: Callable[[str], float | None] = lambda cam: None,
    ) -> None:
        self.node_id = node_id
        self.store = store
        self.make_recorder = make_recorder
        self.timing = timing
        self.version = version
        self.max_cameras = max_cameras
        self.spool_depth = spool_depth
        self.stagger = start_stagger
        self.poll = poll_seconds
        self.clock = clock
        self.say = say
        # called with a camera's url when a hand-off of it to us was asked for: the
        # wiring probes the stream meanwhile, so taking over does not wait for it
        self.prepare = prepare
        self.wakeups = wakeups
        # seconds since the camera's recorder began its open segment (None: unknown)
        self.segment_age = segment_age
        self.only = only  # record exactly these cameras (`camvault record`), no balancing
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}
        self._running: dict[str, Running] = {}
        self._releases: list[tuple[str, int]] = []
        # cameras whose recorder ended (until released): where the next one may start
        self._ends: dict[str, datetime] = {}
        self._draining = False
        self._stopping = False
        self._handoff_pending = False
        self._last_error = ""
        self._db_down_since: float | None = None
        self._wake = threading.Event()  # the keeper: a round now
        self._kick = threading.Event()  # the supervisor: a pass now
        self._waiting: set[str] = set()  # `only` cameras someone else holds (said once)
        self._last_start = 0.0
        self._rounds = 0

    # --- the keeper (database) ----------------------------------------------------------
    def _keep(self, stop: threading.Event) -> None:
        if self.only is None:
            with contextlib.suppress(CamvaultError):
                self.store.node_started(self.node_id)
        while not stop.is_set():
            self._wake.clear()  # before the round: a wake-up during it is not lost
            try:
                self.tick()
            except Exception:  # a bug must not end the keeper: leases would lapse for good
                log.exception("node %s: lease round failed", self.node_id)
            fast = self._handoff_pending or bool(self._releases)
            # while a hand-off is under way, look often: the camera records nowhere meanwhile
            # (a wake-up, by NOTIFY or by an ended recorder, comes sooner still)
            self._wake.wait(min(0.2, self.timing.renew_every) if fast else self.timing.renew_every)
        try:
            self._flush_releases()
        except CamvaultError as exc:  # the leases expire on their own
            log.warning("node %s: could not release leases on shutdown: %s", self.node_id, exc)

    def tick(self) -> None:
        """One round with the database; never raises (a failure is logged and retried)."""
        node, ttl = self.node_id, self.timing.ttl
        try:
            self._flush_releases()
            sent = self.clock()
            began = time.perf_counter()
            held = self.store.renew(node, ttl, self._latest_ends())
            m.RENEW_SECONDS.labels(node).observe(time.perf_counter() - began)
            m.LAST_RENEWAL.labels(node).set(time.time())
            count, releasing, new = self._set_grants(held, deadline(sent, self.timing))
            if new and self._rounds:  # not claimed by us: handed over by their holder
                m.CLAIMS.labels(node).inc(len(new))
                log.info("node %s: took over %s", node, ", ".join(new))
            if self._db_down_since is not None:
                self.say(f"node {node}: PostgreSQL reachable again; {count} lease(s) held")
                self._db_down_since = None
            self._rounds += 1
            if self.only is not None:
                self._claim_only(held)
            else:
                self._balance(count, releasing)
            self._last_error = ""
        except CamvaultError as exc:
            m.RENEW_FAILURES.labels(node).inc()
            self._last_error = str(exc)[:500]
            if self._db_down_since is None:
                self._db_down_since = self.clock()
                self.say(
                    f"node {node}: cannot reach PostgreSQL ({exc}); recording what it holds "
                    f"until {self.timing.margin:g} s before those leases can expire"
                )

    def _balance(self, count: int, releasing: int) -> None:
        node, ttl = self.node_id, self.timing.ttl
        self._draining = self.store.heartbeat(
            node,
            version=self.version,
            max_cameras=self.max_cameras,
            spool_depth=self._spool_depth(),
            cameras_held=count,
            last_error=self._last_error,
        )
        if self._stopping or self._rounds == 1:
            # the first round only registers us: nodes started together all count
            # each other before anyone claims (else the first one takes everything)
            return
        view = self.store.view(node, ttl)
        target = share(view.cameras, view.live_nodes, self.max_cameras)
        # what we hold as of the view, not as of the renewal: a lease passed to us in
        # between is in one and not the other, and we would ask for it twice
        mine = view.held.get(node, 0)
        plan = balance(
            node,
            mine - releasing + view.incoming,
            target,
            view.free,
            view.held,
            draining=self._draining,
            max_cameras=self.max_cameras,
        )
        if plan.claim:
            claimed = self.store.claim(node, plan.claim, ttl)
            m.CLAIMS.labels(node).inc(len(claimed))
            if claimed:
                log.info("node %s: claimed %s", node, ", ".join(c for c, _ in claimed))
                self._refresh_claimed()
        self._handoff_pending = view.incoming > 0
        if plan.donor is not None:
            asked = self.store.request_handoff(node, plan.donor, plan.ask)
            for i, (cam, url) in enumerate(asked):
                self._handoff_pending = True
                log.info("node %s: asked %s to hand over %s", node, plan.donor, cam)
                if url and i < 8:  # a bulk hand-off: do not open a probe storm
                    self.prepare(url)
        if plan.shed:
            self._shed(plan.shed)

    def _claim_only(self, held: list[Held]) -> None:
        """``only`` mode: claim whichever of our cameras is free; say once which are not."""
        if self._stopping:
            return
        assert self.only is not None
        missing = sorted(self.only - {h.camera_id for h in held})
        claimed = self.store.claim_named(self.node_id, missing, self.timing.ttl)
        if claimed:
            m.CLAIMS.labels(self.node_id).inc(len(claimed))
            log.info("node %s: claimed %s", self.node_id, ", ".join(c for c, _ in claimed))
            self._refresh_claimed()
        waiting = set(missing) - {c for c, _ in claimed}
        if waiting and waiting != self._waiting:
            leases = {r["camera_id"]: r for r in self.store.leases()}
            self.say(f"node {self.node_id}: {waiting_text(sorted(waiting), leases)}")
        self._waiting = waiting

    def _set_grants(self, held: list[Held], until: float) -> tuple[int, int, list[str]]:
        """Our leases as just renewed; returns (held, of which being released, cameras new
        to us). A new camera kicks the supervisor: it starts now, not at its next pass."""
        fresh = {
            h.camera_id: Grant(h.epoch, until, h.url, h.segment_seconds, h.handoff_to, h.last_end)
            for h in held
        }
        with self._lock:
            old, self._grants = self._grants, fresh
            releasing = len(self._releases) + sum(1 for r in self._running.values() if r.release)
        new = [c for c, g in fresh.items() if c not in old or old[c].epoch != g.epoch]
        if new:
            self._kick.set()
        return len(fresh), releasing, new

    def _refresh_claimed(self) -> None:
        """A claim returns no camera details: renew once more to fetch them (and to start
        the new cameras at once rather than one renewal interval later)."""
        sent = self.clock()
        held = self.store.renew(self.node_id, self.timing.ttl, self._latest_ends())
        self._set_grants(held, deadline(sent, self.timing))

    def _latest_ends(self) -> dict[str, datetime]:
        with self._lock:  # renewals keep them in the leases, for a failover
            return latest_ends(self._ends, self._running)

    def _shed(self, n: int) -> None:
        with self._lock:
            for cam in sorted(self._grants)[:n]:
                run = self._running.get(cam)
                if run is not None and run.stop.is_set():
                    continue
                if run is not None:
                    self._stop(cam, run, "draining" if self._draining else "over capacity")
                elif (cam, self._grants[cam].epoch) not in self._releases:
                    self._releases.append((cam, self._grants[cam].epoch))

    def _flush_releases(self) -> None:
        while True:
            with self._lock:
                if not self._releases:
                    return
                cam, epoch = self._releases[0]
                end = self._ends.get(cam)
            done = self.store.release(self.node_id, cam, epoch, self.timing.ttl, end)
            if done is not None:
                m.RELEASES.labels(self.node_id).inc()
                to = f"passed to {done.heir}" if done.heir else "freed"
                log.info("node %s: released %s (epoch %d): %s", self.node_id, cam, epoch, to)
            with self._lock:
                self._releases.remove((cam, epoch))
                if self._ends.get(cam) == end:
                    self._ends.pop(cam, None)
                grant = self._grants.get(cam)
                if grant is not None and grant.epoch == epoch:
                    del self._grants[cam]

    def _spool_depth(self) -> int:
        try:
            return int(self.spool_depth())
        except Exception:  # a busy spool must not stop the heartbeat
            return -1

    # --- the supervisor (no I/O) ----------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        keeper_stop = threading.Event()
        keeper = threading.Thread(
            target=self._keep, args=(keeper_stop,), name="lease-keeper", daemon=True
        )
        keeper.start()
        if self.wakeups is not None:  # woken by NOTIFY: hand-offs wait for no poll
            args = (self.wakeups, self.node_id, self._wake, keeper_stop, self.timing.renew_every)
            threading.Thread(target=listen, args=args, name="lease-listener", daemon=True).start()
        try:
            while not stop.is_set():
                self._kick.wait(self.poll)
                self._kick.clear()  # before the pass: a kick during it is not lost
                if not stop.is_set():
                    self.supervise()
        finally:
            self.shutdown()
            keeper_stop.set()
            self._wake.set()
            keeper.join(timeout=self.timing.ttl)

    def supervise(self) -> None:
        now = self.clock()
        with self._lock:
            for cam, run in list(self._running.items()):
                grant = self._grants.get(cam)
                if run.stop.is_set():  # ending: ``_record`` queues its release
                    continue
                if grant is None or grant.epoch != run.epoch:
                    m.LOST.labels(self.node_id).inc()
                    self._stop(cam, run, "lease lost", release=False)
                elif now >= grant.until:
                    m.LOST.labels(self.node_id).inc()
                    self._stop(cam, run, "lease not renewed in time", release=False)
                elif grant.handoff_to:
                    if self._may_hand_on(cam, run, now):
                        self._stop(cam, run, f"handing over to {grant.handoff_to}")
                elif self._draining:
                    if self._may_hand_on(cam, run, now):
                        self._stop(cam, run, "node draining")
                elif grant.url is None:
                    self._stop(cam, run, "camera disabled or has no url")
                elif (grant.url, grant.segment_seconds) != (run.url, run.segment_seconds):
                    self._stop(cam, run, "camera settings changed", release=False)
            for cam, grant in self._grants.items():
                if cam in self._running or self._stopping or self._draining:
                    continue
                if grant.url and not grant.handoff_to and now < grant.until:
                    if self.stagger and now - self._last_start < self.stagger:
                        break
                    self._start(cam, grant)
                    self._last_start = now
                elif (grant.handoff_to or not grant.url) and (
                    cam,
                    grant.epoch,
                ) not in self._releases:
                    # held but not recording (disabled, or asked for): hand it back now
                    self._releases.append((cam, grant.epoch))
                    self._wake.set()
            m.HELD.labels(self.node_id).set(len(self._grants))
            m.RECORDING.labels(self.node_id).set(
                sum(1 for r in self._running.values() if not r.stop.is_set())
            )

    def _may_hand_on(self, cam: str, run: Running, now: float) -> bool:
        """Not in ffmpeg's first seconds, nor just after its latest cut (the recorder keeps
        recording meanwhile: the wait costs no footage, only hand-off time)."""
        if now - run.started < HANDOFF_MIN_RUN:
            return False
        age = self.segment_age(cam)
        return age is None or age >= HANDOFF_MIN_SEGMENT

    def _start(self, cam: str, grant: Grant) -> None:
        assert grant.url is not None
        # ours start no earlier than any holder's last segment (ours too: a restart)
        ends = [t for t in (grant.floor, self._ends.get(cam)) if t is not None]
        floor = handed_floor(cam, max(ends, default=None), datetime.now(UTC))
        rec = self.make_recorder(cam, grant.url, grant.segment_seconds, floor)
        run = Running(grant.epoch, grant.url, grant.segment_seconds, rec, started=self.clock())
        run.thread = threading.Thread(
            target=self._record, args=(cam, run), name=f"rec-{cam}", daemon=True
        )
        self._running[cam] = run
        run.thread.start()
        after = f", nothing before {floor.isoformat(timespec='milliseconds')}" if floor else ""
        log.info("node %s: recording %s (lease epoch %d%s)", self.node_id, cam, grant.epoch, after)

    def _record(self, cam: str, run: Running) -> None:
        """The recorder's thread. When it ends (open segment finalized and spooled) a
        camera stopped in order is released at once: the keeper is woken for it."""
        try:
            run.recorder.run(run.stop)
        finally:
            with self._lock:
                if self._running.get(cam) is run:
                    del self._running[cam]
                end = run.recorder.timeline.handoff_floor()
                if end is not None:
                    self._ends[cam] = end
                if run.release:
                    self._releases.append((cam, run.epoch))
            self._wake.set()
            self._kick.set()

    def _stop(self, cam: str, run: Running, why: str, *, release: bool = True) -> None:
        run.release, run.why = release, why
        run.stop.set()
        text = f"node {self.node_id}: stopping camera {cam}: {why}"
        if release:
            log.info("%s", text)
        else:
            self.say(text)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop every recorder (finalizing its open segment), then release its lease."""
        self._stopping = True
        with self._lock:
            for cam, run in self._running.items():
                if not run.stop.is_set():
                    self._stop(cam, run, "node stopping")
            runs = list(self._running.items())
        limit = time.monotonic() + (timeout or self.timing.ttl * 2)
        for _cam, run in runs:  # each ended thread queued its own release
            if run.thread is not None:
                run.thread.join(max(0.1, limit - time.monotonic()))
        self._wake.set()

    # --- introspection --------------------------------------------------------------------
    def recording(self) -> list[str]:
        with self._lock:
            return sorted(c for c, r in self._running.items() if not r.stop.is_set())

"""Circuit breaker per endpoint (S3, PostgreSQL): pure state, an injectable clock, no I/O.

Per-segment retries answer "is something wrong with *this* segment?". When the endpoint
itself is gone, every segment fails the same way and each one backing off on its own
(redrive delays up to an hour) delays the catch-up long after the endpoint is back. So:

* **closed** (normal): every call goes through. A connection-level failure (no answer at
  all) counts; any success resets the count. ``failure_threshold`` consecutive failures
  from at least ``min_sources`` different segments open the breaker — one segment's own
  retries can never open it (that failure may be specific to the segment).
* **open**: callers hold their work instead of calling; one cheap probe (HeadBucket,
  ``SELECT 1``) is due every ``probe_delay`` seconds, doubling from ``probe_base`` to
  ``probe_cap``. The first probe that gets an answer closes it, and the caller drains the
  backlog at full concurrency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BreakerState:
    """A snapshot of one breaker for status output and metrics: open or closed, failure count,
    probe schedule, outages since start."""

    name: str
    open: bool
    consecutive_failures: int
    opened_at: float | None  # clock() time
    next_probe_at: float | None
    probes: int  # failed probes since it opened
    outages: int  # times it opened since start


class CircuitBreaker:
    """One endpoint's breaker (see the module docstring): opens after ``failure_threshold``
    connection failures from ``min_sources`` segments, then allows only probes on a capped
    backoff until one succeeds. Pure state, no I/O."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        min_sources: int = 2,
        probe_base: float = 0.5,
        probe_cap: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or min_sources < 1:
            raise ValueError("failure_threshold and min_sources must be >= 1")
        self.name = name
        self._threshold = failure_threshold
        self._min_sources = min_sources
        self._probe_base = probe_base
        self._probe_cap = max(probe_cap, probe_base)
        self._clock = clock
        self._cond = threading.Condition()
        self._failures = 0
        self._sources: set[str] = set()
        self._opened_at: float | None = None
        self._next_probe: float | None = None
        self._probes = 0
        self._outages = 0

    # observations ----------------------------------------------------------------------
    def success(self) -> bool:
        """A call got an answer. Returns True when this closed an open breaker."""
        with self._cond:
            was_open = self._opened_at is not None
            self._failures, self._sources = 0, set()
            self._opened_at = self._next_probe = None
            self._probes = 0
            if was_open:
                self._cond.notify_all()
            return was_open

    def failure(self, source: str) -> bool:
        """A connection-level failure of a call for ``source`` (a segment id). Returns True
        when this opened the breaker."""
        with self._cond:
            self._failures += 1
            self._sources.add(source)
            if self._opened_at is not None:
                return False
            if self._failures >= self._threshold and len(self._sources) >= self._min_sources:
                now = self._clock()
                self._opened_at = now
                self._probes = 0
                self._next_probe = now + self._probe_base
                self._outages += 1
                return True
            return False

    # probing ---------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        with self._cond:
            return self._opened_at is not None

    def probe_due(self) -> bool:
        with self._cond:
            return self._next_probe is not None and self._clock() >= self._next_probe

    def probe_failed(self) -> float:
        """The probe got no answer: next one after a doubled (capped) delay. Returns it."""
        with self._cond:
            if self._opened_at is None:
                return 0.0
            self._probes += 1
            delay = min(self._probe_cap, self._probe_base * 2.0**self._probes)
            self._next_probe = self._clock() + delay
            return delay

    def wait_closed(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for the breaker to close; True when closed."""
        with self._cond:
            if self._opened_at is not None:
                self._cond.wait(timeout)
            return self._opened_at is None

    def state(self) -> BreakerState:
        with self._cond:
            return BreakerState(
                name=self.name,
                open=self._opened_at is not None,
                consecutive_failures=self._failures,
                opened_at=self._opened_at,
                next_probe_at=self._next_probe,
                probes=self._probes,
                outages=self._outages,
            )

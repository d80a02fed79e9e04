"""Endpoint-aware recovery: a circuit breaker (``breaker``) plus the cheap probe that tells
whether its endpoint answers again, and what to do the moment it does.

While S3 is down as a whole, the upload workers hold their work instead of each segment
retrying and backing off on its own; one ``Endpoint.watch`` thread probes (HeadBucket /
``SELECT 1``) with capped exponential backoff; the first answer closes the breaker, lifts
the delays the outage put on segments (``Spool.clear_holds``) and wakes the workers, who
drain the backlog at full concurrency.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from camvault.breaker import CircuitBreaker
from camvault.errors import CamvaultError, ServiceUnavailable, StorageUnavailable

log = logging.getLogger(__name__)


def is_connection_failure(exc: BaseException | None) -> bool:
    """No answer at all from S3 (refused, reset, timed out): evidence against the endpoint,
    not the segment. An S3 error *response* is an answer."""
    return isinstance(exc, StorageUnavailable) and exc.code == "network"


class Endpoint:
    """One endpoint's breaker plus its probe and what to do on recovery; ``watch`` probes while the
    breaker is open."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        probe: Callable[[], None],
        on_recover: Callable[[], None],
    ) -> None:
        self.breaker = breaker
        self._probe = probe
        self._on_recover = on_recover
        self._lock = threading.Lock()  # one probe at a time

    @property
    def name(self) -> str:
        return self.breaker.name

    def probe_now(self) -> bool:
        """Probe once if the breaker is open; True when the endpoint is (now) usable."""
        with self._lock:
            if not self.breaker.is_open:
                return True
            began = time.monotonic()
            try:
                self._probe()
            except ServiceUnavailable as exc:
                delay = self.breaker.probe_failed()
                log.info("%s still unreachable (%s); next probe in %.1f s", self.name, exc, delay)
                return False
            except CamvaultError as exc:
                # an answer, even a refusal, means the endpoint is reachable
                log.info("%s probe answered with an error (%s): reachable", self.name, exc)
            self.answered(began)
            return True

    def answered(self, at: float | None = None) -> None:
        """A call to the endpoint got an answer: close the breaker; if it was open (an
        upload begun before it opened may be the first to get through), recover."""
        opened = self.breaker.state().opened_at
        if self.breaker.success():
            down = (at or time.monotonic()) - opened if opened is not None else 0.0
            log.warning("%s answers again after %.0f s: resuming at full speed", self.name, down)
            try:
                self._on_recover()
            except CamvaultError:
                log.exception("%s recovery actions failed; they are retried later", self.name)

    def watch(self, stop: threading.Event, tick: float = 0.1) -> None:
        """Probe whenever one is due, until ``stop``."""
        while not stop.wait(tick):
            if self.breaker.probe_due():
                self.probe_now()

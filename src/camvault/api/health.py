"""``/healthz`` results, cached: a flood of health requests must not cost a DB ping and an
S3 LIST each, and the raw failure text (it names hosts, users, buckets) is only for
admins."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from pydantic import BaseModel, Field

HealthChecks = Mapping[str, Callable[[], None]]


class HealthOut(BaseModel):
    """The answer of ``GET /healthz``: overall status and one entry per dependency."""

    status: str = Field(description="ok | degraded")
    checks: dict[str, str] = Field(description="component → ok | degraded")
    details: dict[str, str] | None = Field(
        None, description="component → error text; only for an admin's bearer token"
    )


class HealthCache:
    """Runs every check at most once per ``ttl`` seconds; concurrent callers share a run."""

    def __init__(
        self,
        checks: HealthChecks,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = checks
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._refreshing = False
        self._at: float | None = None
        self._results: dict[str, str | None] = {}
        self.runs = 0  # how many times the checks ran (for tests and debugging)

    def results(self) -> dict[str, str | None]:
        """name → None when healthy, else the failure text.

        One caller refreshes; while it waits on a slow dependency the others get the
        previous results instead of queueing up (each would hold a worker thread).
        """
        with self._lock:
            fresh = self._at is not None and self._clock() - self._at < self._ttl
            if fresh or (self._refreshing and self._at is not None):
                return dict(self._results)
            if self._refreshing:  # the very first run: nothing to answer with yet
                while self._refreshing:
                    self._done.wait()
                return dict(self._results)
            self._refreshing = True
        results: dict[str, str | None] | None = None
        try:
            results = {name: _run(check) for name, check in self._checks.items()}
        finally:
            with self._lock:
                if results is not None:
                    self._results = results
                    self._at = self._clock()
                    self.runs += 1
                self._refreshing = False
                self._done.notify_all()
        return dict(results)


def _run(check: Callable[[], None]) -> str | None:
    try:
        check()
    except Exception as exc:  # report, never raise: this is the health endpoint
        return f"{type(exc).__name__}: {exc}"
    return None


def report(results: Mapping[str, str | None], *, details: bool) -> tuple[HealthOut, int]:
    ok = all(err is None for err in results.values())
    out = HealthOut(
        status="ok" if ok else "degraded",
        checks={name: "ok" if err is None else "degraded" for name, err in results.items()},
        details={n: e for n, e in results.items() if e is not None} if details else None,
    )
    return out, 200 if ok else 503

"""The circuit breaker's rules, on a fake clock (pure logic, no I/O), and ``Endpoint``'s
probe/recover cycle with fake probes."""

from __future__ import annotations

import threading

import pytest

from camvault.breaker import CircuitBreaker
from camvault.errors import CatalogUnavailable, StoragePermanentError, StorageUnavailable
from camvault.recovery import Endpoint, is_connection_failure


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(clock: Clock, **kw: float) -> CircuitBreaker:
    return CircuitBreaker(
        "S3",
        failure_threshold=int(kw.get("threshold", 3)),
        probe_base=kw.get("base", 1.0),
        probe_cap=kw.get("cap", 8.0),
        clock=clock,
    )


def test_one_segments_own_retries_never_open_it() -> None:
    b = make(Clock())
    for _ in range(10):
        assert not b.failure("seg-a")
    assert not b.is_open
    assert b.state().consecutive_failures == 10


def test_consecutive_failures_across_segments_open_it() -> None:
    b = make(Clock())
    assert not b.failure("seg-a")
    assert not b.failure("seg-a")  # two failures, one segment
    assert b.failure("seg-b")  # third failure, second segment: the endpoint is down
    assert b.is_open
    assert not b.failure("seg-c")  # already open: reported once
    assert b.state().outages == 1


def test_a_success_in_between_resets_the_count() -> None:
    b = make(Clock())
    b.failure("seg-a")
    b.failure("seg-b")
    assert not b.success()  # was closed: nothing to recover from
    b.failure("seg-c")
    b.failure("seg-d")
    assert not b.is_open
    assert b.failure("seg-e")
    assert b.is_open


def test_probes_back_off_exponentially_up_to_the_cap() -> None:
    clock = Clock()
    b = make(clock, base=1.0, cap=8.0)
    for s in ("a", "b", "c"):
        b.failure(s)
    assert not b.probe_due()  # the first probe waits probe_base
    clock.t += 0.99
    assert not b.probe_due()
    clock.t += 0.01
    assert b.probe_due()
    delays = []
    for _ in range(6):
        delay = b.probe_failed()
        delays.append(delay)
        assert not b.probe_due()
        clock.t += delay
        assert b.probe_due()
    assert delays == [2.0, 4.0, 8.0, 8.0, 8.0, 8.0]


def test_an_answer_closes_it_and_reports_the_recovery_once() -> None:
    clock = Clock()
    b = make(clock)
    for s in ("a", "b", "c"):
        b.failure(s)
    clock.t += 5
    assert b.success()  # open → closed: the caller lifts the outage's delays
    assert not b.is_open and not b.probe_due()
    assert b.state().consecutive_failures == 0
    assert not b.success()
    assert b.probe_failed() == 0.0  # closed: nothing to schedule


def test_waiters_wake_when_it_closes() -> None:
    b = make(Clock())
    for s in ("a", "b", "c"):
        b.failure(s)
    assert not b.wait_closed(0.01)
    woke: list[bool] = []
    t = threading.Thread(target=lambda: woke.append(b.wait_closed(30)))
    t.start()
    b.success()
    t.join(30)
    assert woke == [True]


def test_endpoint_probes_only_when_open_and_runs_recovery_on_the_first_answer() -> None:
    clock = Clock()
    b = make(clock)
    answers = [StorageUnavailable("refused", code="network"), None]
    probes: list[int] = []
    recovered: list[int] = []

    def probe() -> None:
        probes.append(1)
        exc = answers.pop(0)
        if exc is not None:
            raise exc

    ep = Endpoint(b, probe, lambda: recovered.append(1))
    assert ep.probe_now() and probes == []  # closed: no probe at all
    for s in ("a", "b", "c"):
        b.failure(s)
    assert not ep.probe_now()  # still down
    assert b.is_open and recovered == []
    assert ep.probe_now()  # answers
    assert not b.is_open and recovered == [1] and len(probes) == 2


def test_an_error_answer_counts_as_reachable() -> None:
    b = make(Clock())
    for s in ("a", "b", "c"):
        b.failure(s)

    def probe() -> None:
        raise StoragePermanentError("403", code="AccessDenied")

    assert Endpoint(b, probe, lambda: None).probe_now()
    assert not b.is_open


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (StorageUnavailable("reset", code="network"), True),
        (StorageUnavailable("500", code="InternalError"), False),
        (StoragePermanentError("403", code="AccessDenied"), False),
        (CatalogUnavailable("down"), False),
        (None, False),
    ],
)
def test_connection_failure_means_no_answer_at_all(
    exc: BaseException | None, expected: bool
) -> None:
    assert is_connection_failure(exc) is expected

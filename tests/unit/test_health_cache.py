"""The /healthz cache: one probe per TTL, and while a probe hangs on a slow dependency the
other callers get the previous answer instead of each holding a worker thread."""

from __future__ import annotations

import threading

from camvault.api.health import HealthCache, report


def test_one_probe_per_ttl_and_no_queue_behind_a_slow_probe() -> None:
    now = [0.0]
    calls = []
    gate = threading.Event()
    entered = threading.Event()

    def s3() -> None:
        calls.append(now[0])
        if len(calls) == 2:  # the second probe hangs until released
            entered.set()
            gate.wait(30)
            raise OSError("s3.internal.example:9000 unreachable")

    cache = HealthCache({"s3": s3}, ttl=5, clock=lambda: now[0])
    assert [cache.results() for _ in range(20)] == [{"s3": None}] * 20
    assert len(calls) == 1
    now[0] = 10.0
    slow = threading.Thread(target=cache.results)
    slow.start()
    assert entered.wait(30)
    # while the refresh hangs: the previous answer, at once, no second probe
    assert cache.results() == {"s3": None} and len(calls) == 2
    gate.set()
    slow.join(30)
    failed = cache.results()
    assert failed["s3"] is not None and "unreachable" in failed["s3"]
    out, status = report(failed, details=False)
    assert status == 503 and out.model_dump(exclude_none=True) == {
        "status": "degraded",
        "checks": {"s3": "degraded"},
    }
    assert report(failed, details=True)[0].details == {"s3": failed["s3"]}

"""An idle uploader is woken by a newly queued segment instead of its next poll."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from camvault.spool import Spool
from tests.support.spool import new_segment as _new


def test_queueing_a_segment_wakes_a_waiting_uploader(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    stop = threading.Event()
    token = spool.queued_token()
    assert spool.claim() is None
    with ThreadPoolExecutor(1) as pool:
        # an hour-long poll: only the admit below can end this wait with True
        woken = pool.submit(spool.wait_queued, token, stop, 3600.0)
        spool.admit(_new(tmp_path, "a.mp4"))
        assert woken.result(timeout=600) is True
    seg = spool.claim()
    assert seg is not None and seg.s3_key == "cam/a.mp4"
    spool.close()


def test_a_segment_queued_between_claim_and_wait_is_not_missed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    token = spool.queued_token()
    assert spool.claim() is None
    spool.admit(_new(tmp_path, "b.mp4"))  # lands before the uploader starts waiting
    assert spool.wait_queued(token, threading.Event(), 3600.0) is True
    spool.close()


def test_stop_and_timeout_end_the_wait_without_a_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    stop = threading.Event()
    assert spool.wait_queued(spool.queued_token(), stop, 0.05) is False
    stop.set()
    assert spool.wait_queued(spool.queued_token(), stop, 3600.0) is False
    spool.close()

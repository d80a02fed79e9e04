"""Pure lease decisions: deadlines by the monotonic clock, shares, balancing steps."""

from __future__ import annotations

import math

import pytest

from camvault.config import load_settings
from camvault.errors import ConfigError
from camvault.fleet.leases import LeaseTiming, balance, deadline, share


def test_deadline_is_ttl_minus_margin_after_the_renewal_was_sent() -> None:
    t = LeaseTiming(ttl=15, margin=3)
    assert t.renew_every == 5
    assert deadline(100.0, t) == 112.0


@pytest.mark.parametrize(("ttl", "margin"), [(6, 4), (15, 10), (15, 0), (0, 1)])
def test_timing_rejects_margins_that_leave_no_renewal(ttl: float, margin: float) -> None:
    with pytest.raises(ValueError):
        LeaseTiming(ttl, margin)


def test_share_is_the_ceiling_capped_by_capacity() -> None:
    assert share(6, 3) == 2
    assert share(7, 3) == 3
    assert share(0, 3) == 0
    assert share(5, 0) == 5  # no live node counted yet (ourselves before the heartbeat)
    assert share(100, 2, max_cameras=30) == 30


def test_claims_the_share_plus_one_while_cameras_lie_free() -> None:
    assert balance("a", 0, 2, 6, {}).claim == 3
    assert balance("a", 2, 2, 2, {"b": 2}).claim == 1
    assert balance("a", 3, 2, 2, {"b": 3}).claim == 0
    assert balance("a", 0, 2, 1, {}).claim == 1  # never more than is free
    assert balance("a", 1, 5, 9, {}, max_cameras=2).claim == 1


def test_asks_the_richest_node_holding_two_more_for_a_handoff() -> None:
    b = balance("new", 0, 2, 0, {"a": 3, "b": 3, "c": 1})
    assert (b.claim, b.donor, b.shed, b.ask) == (0, "b", 0, 1)
    assert balance("new", 0, 167, 0, {"a": 5000}).ask == 167  # in bulk, up to the share
    assert balance("new", 0, 167, 0, {"a": 100}).ask == 50  # never leaving the donor below
    assert balance("new", 1, 2, 0, {"a": 2, "b": 2}).donor is None  # within one: balanced
    assert balance("a", 2, 2, 0, {"a": 2, "b": 4}).donor is None  # at our share: no ask


def test_draining_sheds_everything_and_capacity_sheds_the_excess() -> None:
    assert balance("a", 4, 2, 3, {}, draining=True) == balance("a", 4, 0, 0, {}, draining=True)
    assert balance("a", 4, 2, 3, {}, draining=True).shed == 4
    assert balance("a", 4, 4, 0, {}, max_cameras=3).shed == 1


def test_repeated_handoffs_converge_within_the_bound() -> None:
    """Simulate joins: every node runs the step until nothing changes; nobody ends above
    ⌈cameras/nodes⌉ + 1 (in fact within one of each other)."""
    cameras, held = 13, {"a": 13}
    for joiner in ("b", "c", "d"):
        held[joiner] = 0
        for _ in range(100):
            moved = False
            for node in sorted(held):
                target = share(cameras, len(held))
                step = balance(node, held[node], target, 0, held)
                if step.donor:
                    held[step.donor] -= step.ask
                    held[node] += step.ask
                    moved = True
            if not moved:
                break
        assert sum(held.values()) == cameras
        assert max(held.values()) <= math.ceil(cameras / len(held)) + 1
        assert max(held.values()) - min(held.values()) <= 1


def test_node_table_in_the_config_file(tmp_path: object) -> None:
    from pathlib import Path

    f = Path(str(tmp_path)) / "c.toml"
    f.write_text('[node]\nid = "n-7"\nlease_seconds = 9\nmax_cameras = 40\n')
    s = load_settings(f, environ={})
    assert (s.node, s.fleet.lease_seconds, s.fleet.max_cameras) == ("n-7", 9, 40)
    s = load_settings(f, environ={"CAMVAULT_NODE_MAX_CAMERAS": "5", "CAMVAULT_NODE": "x"})
    assert (s.node, s.fleet.max_cameras, s.fleet.lease_seconds) == ("x", 5, 9)
    f.write_text("[node]\nlease_seconds = 6\nstop_margin_seconds = 5\n")
    with pytest.raises(ConfigError, match="stop_margin_seconds"):
        load_settings(f, environ={})

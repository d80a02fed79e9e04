"""Lease decisions, pure: no I/O, no clock of its own (times are passed in).

Safety ("at most one node records a camera") rests on two clocks that never meet:

- the database decides expiry: a lease renewed at DB time ``T`` expires at ``T + ttl``,
  and nobody can claim it before then (``expires_at <= now()`` in the claim);
- the holder decides when to stop by its *own monotonic clock*: a renewal sent at local
  time ``t`` (before the statement reached the server, so ``t`` precedes ``T``) keeps the
  camera only until ``t + ttl - margin``. If renewals fail (PostgreSQL cut off), the
  camera is stopped ``margin`` seconds before the lease can have expired anywhere; the
  margin covers finalizing the open segment and clock-rate drift.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Balance", "LeaseTiming", "balance", "deadline", "share"]


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """Lease lifetime and the safety margin before it at which a node stops a camera; refuses
    values that leave no room for a renewal."""

    ttl: float  # seconds a lease lives after a renewal (DB clock)
    margin: float  # stop this long before the lease could expire

    def __post_init__(self) -> None:
        if self.ttl <= 0 or self.margin <= 0:
            raise ValueError("ttl and margin must be positive")
        # at least one renewal interval must fit before the stop deadline, or a node would
        # stop its cameras between two successful renewals
        if self.ttl - self.margin <= self.renew_every:
            raise ValueError(
                f"stop margin {self.margin} s leaves no room for a renewal every "
                f"{self.renew_every:.1f} s within a {self.ttl} s lease"
            )

    @property
    def renew_every(self) -> float:
        return self.ttl / 3


def deadline(sent_at: float, timing: LeaseTiming) -> float:
    """Monotonic time until which a lease renewed by a statement sent at ``sent_at`` may
    be recorded under."""
    return sent_at + timing.ttl - timing.margin


def share(cameras: int, live_nodes: int, max_cameras: int = 0) -> int:
    """How many cameras this node should hold: ⌈cameras / nodes⌉, capped by its capacity
    (``max_cameras``, 0 = no limit)."""
    target = math.ceil(cameras / max(1, live_nodes)) if cameras else 0
    return min(target, max_cameras) if max_cameras else target


@dataclass(frozen=True, slots=True)
class Balance:
    """One node's next move: leases to claim, a donor to ask for hand-offs (and how many), leases
    to shed."""

    claim: int  # free/expired leases to claim now
    donor: str | None  # node to ask for orderly hand-offs, if any
    shed: int  # leases to hand back (over capacity, or draining)
    ask: int = 0  # how many cameras to ask the donor for


def balance(
    me: str,
    held: int,
    target: int,
    free: int,
    holders: Mapping[str, int],
    *,
    draining: bool = False,
    max_cameras: int = 0,
) -> Balance:
    """One balancing step for node ``me`` holding ``held`` live leases.

    Claim free cameras up to the share — one more while cameras lie free (a dead node
    may still be counted live for up to a lease time: an unrecorded camera is worse than
    one camera of imbalance, within the ⌈cameras/nodes⌉ + 1 bound); with none free and
    still below the share, ask the
    busiest node holding at least two more than us for one hand-off (converges to counts
    within one of each other: nobody above ⌈cameras/nodes⌉ + 1). A draining node sheds
    everything and claims nothing; a node over its capacity sheds the excess.
    """
    if draining:
        return Balance(0, None, held)
    over = held - max_cameras if max_cameras and held > max_cameras else 0
    limit = target + 1 if free else target
    if max_cameras:
        limit = min(limit, max_cameras)
    claim = max(0, min(free, limit - held))
    donor, ask = None, 0
    if not claim and held < target:
        richest = sorted(
            ((n, k) for k, n in holders.items() if k != me and n >= held + 2), reverse=True
        )
        if richest:
            n, donor = richest[0]
            # half the difference at most: the donor must not end up below us
            ask = max(1, min(target - held, (n - held) // 2))
    return Balance(claim, donor, over, ask)

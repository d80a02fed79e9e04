"""Wake-ups between nodes through PostgreSQL (LISTEN/NOTIFY on ``camvault_leases``).

Who is woken, by what (payload = the node concerned, ``*`` = anyone):

- a node asked to hand cameras over (``request_handoff``): it stops them now, not at its
  next renewal;
- the node a lease was passed to (``release`` of a hand-off): it starts recording now;
- everyone, when a lease was freed (shutdown, drain): whoever may claims it now.

Only ever a shortcut: a notification sent while a listener was reconnecting is lost, and
the keeper's own polling covers for it.
"""

from __future__ import annotations

import threading
from typing import Protocol

from camvault.errors import CamvaultError

__all__ = ["ANYONE", "CHANNEL", "Wakeups", "listen"]

CHANNEL = "camvault_leases"
ANYONE = "*"


class Wakeups(Protocol):
    """LISTEN on the leases channel (``catalog.listen.Listener``)."""

    def wait(self, timeout: float) -> list[str]: ...
    def close(self) -> None: ...


def listen(
    wakeups: Wakeups,
    node_id: str,
    wake: threading.Event,
    stop: threading.Event,
    retry_seconds: float,
) -> None:
    """Set ``wake`` on every notification for ``node_id`` (or anyone) until ``stop``."""
    try:
        while not stop.is_set():
            try:
                payloads = wakeups.wait(1.0)
            except CamvaultError:  # PostgreSQL unreachable: the keeper's polling covers
                stop.wait(retry_seconds)
                continue
            if node_id in payloads or ANYONE in payloads:
                wake.set()
    finally:
        wakeups.close()

"""PR_SET_PDEATHSIG for forked children: a signal when the parent dies (Linux).

Its own module, standard library only: the recorder's launcher and the export's fed
ffmpeg both use it, and an export must not import ``camvault.recorder`` for it (that
package loads PyAV, ~22 MB of resident pages an export job never needs).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

__all__ = ["set_pdeathsig"]


def _prctl() -> Callable[..., int] | None:
    try:
        fn: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    return fn


_PRCTL = _prctl()  # resolved before any fork: a forked child must not load libraries


def set_pdeathsig(sig: int, parent: int) -> None:
    """In a forked child, before exec: ``sig`` when the parent dies (Linux; else a no-op).
    A parent that died before that (the child was reparented) leaves it: exit at once."""
    if _PRCTL is None:
        return
    _PRCTL(1, sig)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)

"""One run's ffmpeg process: started in a session of its own (optionally made to finish
when the recorder dies), and found and stopped again after a crash.

A **run** (``Run``) is one continuous connection, recorded by one ffmpeg into its own
working directory ``<spool>/recording/<camera>/<run id>``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from camvault.recorder import command
from camvault.recorder.command import SEGMENT_PATTERN

log = logging.getLogger(__name__)

__all__ = ["Run", "ffmpeg_of", "new_run_id", "start_ffmpeg", "stop_leftover_ffmpeg"]

_SEGMENT_RE = re.compile(r"seg_\d{6}(?:\.tail)?\.mp4")  # .tail: see split_incomplete_fragment


@dataclass
class Run:
    """One run's working directory and ffmpeg, and what of it was handed on so far."""

    run_id: str
    dir: Path
    proc: subprocess.Popen[bytes] | None = None
    handed: set[str] = field(default_factory=set)
    segments: int = 0
    size: int = 0
    connected: bool = False
    last_error: str = ""

    def files(self) -> list[str]:
        """The segment files in the run directory, in recording order."""
        return sorted(p.name for p in self.dir.glob("seg_*.mp4") if _SEGMENT_RE.fullmatch(p.name))

    @property
    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None


def new_run_id(now: datetime) -> str:
    return f"{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


def _libc(name: str) -> Callable[..., int] | None:
    import ctypes

    try:
        fn: Callable[..., int] = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):  # not Linux
        return None
    return fn


# resolved here: the forked child must not load libraries
_PRCTL = _libc("prctl")
_SIGNAL = _libc("signal")
if _SIGNAL is not None:
    import ctypes

    _SIGNAL.argtypes = [ctypes.c_int, ctypes.c_void_p]  # type: ignore[attr-defined]
    _SIGNAL.restype = ctypes.c_void_p  # type: ignore[attr-defined]


def _sigint_on_parent_death() -> None:
    """In the forked child: SIGINT when the thread that started us dies (Linux prctl
    PR_SET_PDEATHSIG = 1), and SIGPIPE ignored (its stderr pipe dies with the parent).
    Elsewhere a no-op. Caveat (measured, issue 11): the kernel sends the signal again at
    each reparenting to another live thread of the dying recorder, and a second SIGINT makes
    ffmpeg abort its I/O ("Immediate exit requested"), so a killed multi-threaded recorder's
    ffmpeg often ends without its last fragment; a stderr file instead of the pipe does not
    change that, a single-threaded parent does."""
    if _PRCTL is not None and _SIGNAL is not None:
        _SIGNAL(signal.SIGPIPE, 1)  # SIG_IGN
        _PRCTL(1, signal.SIGINT)


def start_ffmpeg(cmd: list[str], *, die_with_parent: bool) -> subprocess.Popen[bytes]:
    """Start a run's ffmpeg; its stderr is piped (to be logged, redacted), stdin kept open
    (``segmenter.stop_gracefully`` asks it to stop by writing ``q``)."""
    return subprocess.Popen(
        cmd,
        env={**os.environ, **command.FFMPEG_ENV},  # looked up per run: the bench varies it
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # Ctrl-C in a terminal is ours to relay, not ffmpeg's
        preexec_fn=_sigint_on_parent_death if die_with_parent else None,
    )


def ffmpeg_of(pid: object, run_dir: Path) -> bool:
    """Is ``pid`` (still) the ffmpeg writing into ``run_dir``? (Linux /proc; else False.)"""
    if not isinstance(pid, int):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()  # empty for a zombie
    except OSError:
        return False
    return os.fsencode(run_dir / SEGMENT_PATTERN) in cmdline.split(b"\0")


def stop_leftover_ffmpeg(pid: object, run_dir: Path, grace: float, camera_id: str) -> None:
    """The ffmpeg of a killed recorder records on (its own session; nobody reads what it
    writes): let it finish its open segment (SIGINT) before its run is salvaged, so the
    directory is not collected, and removed, under it. SIGKILL after ``grace`` seconds."""
    if not ffmpeg_of(pid, run_dir):
        return
    assert isinstance(pid, int)
    log.warning("camera %s: stopping leftover ffmpeg %d", camera_id, pid)
    deadline = time.monotonic() + grace
    sig = signal.SIGINT
    with contextlib.suppress(OSError):
        os.kill(pid, sig)
    while ffmpeg_of(pid, run_dir) and time.monotonic() < deadline + 5:
        if sig == signal.SIGINT and time.monotonic() > deadline:
            sig = signal.SIGKILL
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        time.sleep(0.05)

"""One run's ffmpeg process: started in a session of its own (optionally made to finish
when the recorder dies), and found and stopped again after a crash.

A **run** (``Run``) is one continuous connection, recorded by one ffmpeg into its own
working directory ``<spool>/recording/<camera>/<run id>``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from camvault.recorder import command, launcher
from camvault.recorder.command import SEGMENT_PATTERN

log = logging.getLogger(__name__)

__all__ = [
    "Launched",
    "Run",
    "ffmpeg_of",
    "ffmpeg_pid",
    "new_run_id",
    "start_ffmpeg",
    "stop_leftover_ffmpeg",
]

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
    def ffmpeg_pid(self) -> int | None:
        return None if self.proc is None else ffmpeg_pid(self.proc)

    @property
    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None


def new_run_id(now: datetime) -> str:
    return f"{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


class Launched(subprocess.Popen[bytes]):
    """A fleet node's run: the ``launcher`` process, whose only child is the run's ffmpeg
    (``ffmpeg_pid``). Both are in a session of their own; signals go to the whole process
    group, so a stop reaches ffmpeg and a kill ends both (the launcher ignores the stop
    signals, and exits as ffmpeg did)."""

    ffmpeg_pid: int

    def send_signal(self, sig: int) -> None:
        self.poll()
        if self.returncode is not None:  # reaped: its group id may be reused
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)


def ffmpeg_pid(proc: subprocess.Popen[bytes]) -> int:
    """The pid of the ffmpeg itself (a fleet node's run process is its launcher)."""
    return proc.ffmpeg_pid if isinstance(proc, Launched) else proc.pid


def start_ffmpeg(cmd: list[str], *, die_with_parent: bool) -> subprocess.Popen[bytes]:
    """Start a run's ffmpeg; its stderr is piped (to be logged, redacted), stdin kept open
    (``segmenter.stop_gracefully`` asks it to stop by writing ``q``). ``die_with_parent``
    (fleet nodes): ffmpeg finishes its open segment and exits when the recorder dies —
    started by a single-threaded ``launcher`` that dies with the recorder (why: there)."""
    env = {**os.environ, **command.FFMPEG_ENV}  # looked up per run: the bench varies it
    if not die_with_parent:
        return subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C in a terminal is ours to relay, not ffmpeg's
        )
    if shutil.which(cmd[0]) is None:  # as Popen says it (the launcher would exit 127)
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), cmd[0])
    node = os.getpid()
    proc = Launched(
        launcher.launch_command(node, sys.executable, cmd),
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,  # one line: ffmpeg's pid
        stderr=subprocess.PIPE,
        start_new_session=True,
        # the launcher dies by SIGKILL with the node's thread that started it (then its
        # ffmpeg gets its one SIGINT)
        preexec_fn=functools.partial(launcher.set_pdeathsig, signal.SIGKILL, node),
    )
    assert proc.stdout is not None
    with proc.stdout:
        line = proc.stdout.readline()
    try:
        proc.ffmpeg_pid = launcher.parse_started(line)
    except OSError:
        proc.wait()
        for pipe in (proc.stdin, proc.stderr):
            if pipe is not None:
                pipe.close()
        raise
    return proc


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

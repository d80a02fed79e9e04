"""The parent of a fleet node's ffmpeg: one small single-threaded process per run, run as
a script (``python -I -S launcher.py NODE_PID FFMPEG_ARGV...``) by
``supervision.start_ffmpeg``. Standard library only, no camvault imports: it starts fast.

Why it exists (issue 11, measured): a fleet node's ffmpeg must finish its open segment
when the node dies, so it gets PR_SET_PDEATHSIG=SIGINT. But the kernel sends that signal
again each time ffmpeg is reparented to another live thread of its dying parent, and a
second SIGINT makes ffmpeg abort its I/O without writing its last fragment ("Immediate
exit requested"): with a 4-thread node killed by SIGKILL, 10 runs in 13 lost up to a
second; with a single-threaded parent, none in 17. So ffmpeg's parent is this process
(one thread, so ffmpeg gets exactly one SIGINT), which itself dies by SIGKILL with the
node (its own PDEATHSIG, set by the node). A process per run rather than one launcher
per node: the node keeps an ordinary ``Popen`` (pipes, wait, exit status) for each run.

Protocol: ffmpeg inherits the launcher's stdin and stderr (the node writes ``q`` to one
and reads the log from the other) and its session (process group); the launcher writes
ffmpeg's pid — or ``!errno message`` if it could not be started — as one line to its
stdout, ignores the stop signals the node sends to the whole group (they are ffmpeg's),
and exits as ffmpeg did (killed by the same signal, or with its exit code).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable

__all__ = ["STOP_SIGNALS", "exit_like", "main", "parse_started", "set_pdeathsig"]

# sent by the node to ffmpeg's process group: for ffmpeg, not for the launcher
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


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
    _PRCTL(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:
        os._exit(1)


def parse_started(line: bytes, cmd0: str) -> int:
    """ffmpeg's pid from the launcher's line; OSError (as Popen raises it, e.g.
    FileNotFoundError) if ffmpeg could not be started, or the launcher died first."""
    text = line.decode("utf-8", "replace").strip()
    if text.isdigit():
        return int(text)
    if text.startswith("!"):
        code, _, message = text[1:].partition(" ")
        if code.isdigit():
            raise OSError(int(code), message, cmd0)
    raise OSError(f"the ffmpeg launcher did not start ffmpeg: {text or 'no answer'}")


def exit_like(status: int) -> int:
    """Leave as ffmpeg did (``status`` as Popen reports it): killed by the same signal,
    so the node's "ffmpeg killed by SIGKILL" stays true; else its exit code."""
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        return 128 - status  # a signal whose default is not to terminate
    return status & 0xFF


def _ffmpeg_child(launcher: int) -> None:
    """In ffmpeg's forked child: the stop signals back to default (ffmpeg handles them),
    SIGPIPE ignored (its stderr pipe dies with the node before it has finished), and
    SIGINT when the launcher dies."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    set_pdeathsig(signal.SIGINT, launcher)


def main(argv: list[str]) -> int:
    node, cmd = int(argv[1]), argv[2:]
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if os.getppid() != node:  # the node died before our PDEATHSIG was set: start nothing
        return 1
    me = os.getpid()
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, preexec_fn=lambda: _ffmpeg_child(me)
        )
    except OSError as exc:
        print(f"!{exc.errno or 0} {exc.strerror or exc}", flush=True)
        return 127
    print(proc.pid, flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the node has read its line: no pipe held open
    return exit_like(proc.wait())


if __name__ == "__main__":
    sys.exit(main(sys.argv))

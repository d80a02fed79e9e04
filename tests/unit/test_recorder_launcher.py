"""A fleet node's ffmpeg is started by the single-threaded ``launcher``: when the node is
killed its ffmpeg gets exactly one SIGINT, and everything the recorder does with the run's
process (stop with ``q`` or a signal, kill, exit status, stderr, the saved pid) still
reaches ffmpeg. Real processes; a small Python program stands in for ffmpeg."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from camvault.recorder import launcher
from camvault.recorder.supervision import Launched, Run, start_ffmpeg
from camvault.segmenter import stop_gracefully

# stands in for ffmpeg: logs to stderr, 'q' on stdin ends it (7), SIGINT ends it (3)
FFMPEG = """
import signal, sys
signal.signal(signal.SIGINT, lambda *a: sys.exit(3))
print("ready", file=sys.stderr, flush=True)
print("got " + sys.stdin.read(1), file=sys.stderr, flush=True)
sys.exit(7)
"""

# counts the SIGINTs it receives (the wakeup fd gets a byte per delivery), writes the
# count a second after the first
COUNTER = """
import os, signal, sys, time
r, w = os.pipe()
os.set_blocking(r, False)
os.set_blocking(w, False)
signal.set_wakeup_fd(w)
signal.signal(signal.SIGINT, lambda *a: None)
open(sys.argv[1] + ".ready", "w").close()
got = b""
while not got:
    time.sleep(0.05)
    try:
        got = os.read(r, 100)
    except BlockingIOError:
        pass
time.sleep(1.0)
try:
    got += os.read(r, 100)
except BlockingIOError:
    pass
open(sys.argv[1], "w").write(str(len(got)))
"""

# a recorder-like node: several threads, ffmpeg started from one of them (not main)
NODE = """
import sys, threading, time
from camvault.recorder.supervision import start_ffmpeg
for _ in range(3):
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
def record():
    proc = start_ffmpeg([sys.executable, "-c", sys.argv[1], sys.argv[2]], die_with_parent=True)
    print(proc.pid, proc.ffmpeg_pid, flush=True)
    time.sleep(600)
threading.Thread(target=record, daemon=True).start()
time.sleep(600)
"""


def _wait(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    """Running (a zombie, whose command line is empty, is not)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() != b""
    except OSError:
        return False


def _ppid_pgid(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[2])


def test_parse_started() -> None:
    assert launcher.parse_started(b"1234\n") == 1234
    for answer in (b"", b"camvault-launcher: 1: bad\n"):
        with pytest.raises(OSError, match="did not start ffmpeg"):
            launcher.parse_started(answer)


def test_the_run_is_ffmpeg_under_its_launcher_and_q_stops_it(tmp_path: Path) -> None:
    with start_ffmpeg([sys.executable, "-c", FFMPEG], die_with_parent=True) as proc:
        assert isinstance(proc, Launched) and proc.stderr is not None
        run = Run("r", tmp_path, proc=proc)
        assert run.ffmpeg_pid == proc.ffmpeg_pid != proc.pid
        # ffmpeg is the launcher's child, in the launcher's own session and group
        assert _ppid_pgid(proc.ffmpeg_pid) == (proc.pid, proc.pid)
        assert os.getsid(proc.ffmpeg_pid) == proc.pid
        assert proc.stderr.readline() == b"ready\n"  # ffmpeg's log reaches the recorder
        assert stop_gracefully(proc, grace=10) == 7  # 'q' reached it; its exit code is ours
        assert proc.stderr.read() == b"got q\n"
    _wait(lambda: not _alive(proc.ffmpeg_pid))


def test_a_stop_signal_reaches_ffmpeg_once_and_its_death_is_reported() -> None:
    with start_ffmpeg([sys.executable, "-c", FFMPEG], die_with_parent=True) as proc:
        assert proc.stderr is not None and proc.stderr.readline() == b"ready\n"
        proc.send_signal(signal.SIGINT)  # to the group: the launcher ignores it
        assert proc.wait(10) == 3
    # an ffmpeg killed by a signal: the launcher dies by the same one
    sleeper = "import time; time.sleep(60)"
    with start_ffmpeg([sys.executable, "-c", sleeper], die_with_parent=True) as killed:
        assert isinstance(killed, Launched)
        killed.send_signal(signal.SIGTERM)
        assert killed.wait(10) == -signal.SIGTERM
    _wait(lambda: not _alive(killed.ffmpeg_pid))


def test_kill_ends_ffmpeg_too() -> None:
    deaf = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"
    with start_ffmpeg([sys.executable, "-c", deaf], die_with_parent=True) as proc:
        assert isinstance(proc, Launched)
        assert stop_gracefully(proc, grace=0.4) == -signal.SIGKILL
    _wait(lambda: not _alive(proc.ffmpeg_pid))


def test_a_missing_ffmpeg_raises_as_popen_does() -> None:
    with pytest.raises(FileNotFoundError):
        start_ffmpeg(["/nonexistent/ffmpeg"], die_with_parent=True)


def test_without_die_with_parent_ffmpeg_is_the_run_process(tmp_path: Path) -> None:
    with start_ffmpeg([sys.executable, "-c", FFMPEG], die_with_parent=False) as proc:
        assert not isinstance(proc, Launched)
        assert Run("r", tmp_path, proc=proc).ffmpeg_pid == proc.pid
        assert stop_gracefully(proc, grace=10) == 7


@pytest.mark.parametrize("attempt", range(3))
def test_a_killed_multithreaded_node_sends_its_ffmpeg_one_sigint(
    attempt: int, tmp_path: Path
) -> None:
    """Started directly by the node (PR_SET_PDEATHSIG=SIGINT), the stand-in got 2-3 SIGINTs
    in 4 of 6 tries: one per dying thread it was reparented to."""
    count = tmp_path / "sigints"
    with subprocess.Popen(
        [sys.executable, "-c", NODE, COUNTER, str(count)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ) as node:
        try:
            assert node.stdout is not None
            starter, ffmpeg = map(int, node.stdout.readline().split())
            _wait(lambda: Path(f"{count}.ready").exists())
            assert _ppid_pgid(ffmpeg)[0] == starter
        finally:
            node.kill()
    _wait(lambda: count.exists() and count.read_text() != "")
    assert count.read_text() == "1"
    _wait(lambda: not _alive(starter) and not _alive(ffmpeg))

"""The parent of a fleet node's ffmpeg: one small single-threaded ``sh`` per run, started
by ``supervision.start_ffmpeg`` (``launch_command``).

Why it exists (issue 11, measured): a fleet node's ffmpeg must finish its open segment
when the node dies, so it gets PR_SET_PDEATHSIG=SIGINT. But the kernel sends that signal
again each time ffmpeg is reparented to another live thread of its dying parent, and a
second SIGINT makes ffmpeg abort its I/O without writing its last fragment ("Immediate
exit requested"): with a 4-thread node killed by SIGKILL, 10 runs in 13 lost up to a
second; with a single-threaded parent, none in 17. So ffmpeg's parent is this launcher
(one thread: ffmpeg gets exactly one SIGINT), which itself dies by SIGKILL with the node
(its own PDEATHSIG, set by the node). A process per run rather than one launcher per
node: the node keeps an ordinary ``Popen`` (pipes, wait, exit status) for each run. A
shell, not Python, stays alive beside each ffmpeg: 0.15-0.4 MB PSS, not ~5.5 MB.
Python runs only for a moment in ffmpeg's own process, to set its PDEATHSIG (no setpriv
needed) and exec it.

Protocol: ffmpeg inherits the launcher's stdin and stderr (the node writes ``q`` to one
and reads the log from the other) and its session (process group). It writes its pid as
one line to the launcher's stdout (the node's pipe) once it is ready for signals. The
launcher ignores the stop signals the node sends to the whole group (they are ffmpeg's)
and exits as ffmpeg did: killed by the same signal, or with its exit code (127: ffmpeg
could not be started).
"""

from __future__ import annotations

from camvault.pdeathsig import set_pdeathsig

__all__ = ["NAME", "launch_command", "parse_started", "set_pdeathsig"]

NAME = "camvault-launcher"  # its $0 (in ps, and in its error messages)

# The launcher: ``sh -c LAUNCHER NAME NODE_PID SHIM PYTHON FFMPEG_ARGV…``. The node's
# death before its PDEATHSIG was set leaves it orphaned: start nothing then. fd 3: a
# background command's stdin would be /dev/null. Exit statuses 129-159 are "killed by
# signal (status - 128)" (ffmpeg's own codes are 0, 1, 123, 255); the shell's word for
# that ("Terminated") kept out of ffmpeg's log.
LAUNCHER = """\
[ "$PPID" = "$1" ] || exit 1
trap '' INT TERM
shim=$2
py=$3
shift 3
exec 3<&0
"$py" -I -S -c "$shim" "$$" "$@" <&3 3<&- &
exec 3<&- >/dev/null
wait "$!" 2>/dev/null
s=$?
if [ "$s" -gt 128 ] && [ "$s" -lt 160 ]; then
    trap - INT TERM
    kill -"$((s - 128))" "$$"
fi
exit "$s"
"""

# Python in ffmpeg's process, before exec: the stop signals back to default (the
# launcher ignores them), SIGPIPE ignored (its stderr pipe dies with the node before it
# has finished), SIGINT when the launcher dies — unless it already has; then its pid to
# the node: from then on a stop signal reaches ffmpeg.
SHIM = """\
import ctypes, os, signal, sys
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, signal.SIG_DFL)
signal.signal(signal.SIGPIPE, signal.SIG_IGN)
getattr(ctypes.CDLL(None), "prctl", lambda *a: 0)(1, signal.SIGINT)  # Linux only
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
os.write(1, b"%d\\n" % os.getpid())
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as exc:
    print(f"camvault: cannot start {sys.argv[2]}: {exc.strerror}", file=sys.stderr)
    os._exit(127)
"""


def launch_command(node_pid: int, python: str, cmd: list[str]) -> list[str]:
    """The launcher's argv: it runs ``cmd`` (ffmpeg's) as its only child."""
    return ["/bin/sh", "-c", LAUNCHER, NAME, str(node_pid), SHIM, python, *cmd]


def parse_started(line: bytes) -> int:
    """ffmpeg's pid from the launcher's line; OSError if the launcher died first."""
    text = line.decode("utf-8", "replace").strip()
    if text.isdigit():
        return int(text)
    raise OSError(f"the ffmpeg launcher did not start ffmpeg: {text or 'no answer'}")

"""ffmpeg's diagnostics (its stderr) go to a file in the run directory, ``ffmpeg.log``, not
to a pipe to the recorder, and the recorder reads them from there (``LogTail``).

Why not a pipe: a pipe dies with the recorder. A node killed with kill -9 sends its ffmpeg
SIGINT (PR_SET_PDEATHSIG); ffmpeg then logs a line, its write to the dead pipe fails
(EPIPE, SIGPIPE being ignored) and ffmpeg exits 255 without writing its last fragment —
up to a fragment of footage lost per camera. A file outlives its reader: ffmpeg finishes
the segment. The file is 0600 in the 0700 run directory (ffmpeg's messages may quote the
camera URL, password included, as ``source.ffconcat`` holds it), kept small while read
(``MAX_BYTES``) and removed at the end of the run (``forget``), like the URL script.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["LOG_FILE", "MAX_BYTES", "LogTail", "forget", "open_for_ffmpeg"]

LOG_FILE = "ffmpeg.log"
# ffmpeg logs at -loglevel warning: a few lines a run, unless a camera sends a stream it
# keeps warning about (timestamps, say) — then the file is emptied once read this far
MAX_BYTES = 256 * 1024
_MAX_LINE = 4096  # a line longer than this is cut (ffmpeg's are short; a garbled log is not)


def open_for_ffmpeg(run_dir: Path) -> int:
    """A new, empty log file for the run's ffmpeg, as a file descriptor to hand it as its
    stderr (the caller closes its own copy). O_APPEND: ffmpeg's writes always go to the
    end, so after ``LogTail`` has emptied the file they start again at its beginning."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
    return os.open(run_dir / LOG_FILE, flags, 0o600)


def forget(run_dir: Path) -> None:
    """Remove the log: it has been read (or its ffmpeg is gone, see ``stop_leftover_ffmpeg``)."""
    (run_dir / LOG_FILE).unlink(missing_ok=True)


class LogTail:
    """Reads the complete lines ffmpeg appended to its log since the last ``read``."""

    def __init__(self, path: Path, on_line: Callable[[str], None], max_bytes: int = MAX_BYTES):
        self.path = path
        self._on_line = on_line
        self._max = max_bytes
        self._offset = 0
        self._partial = b""

    def read(self, *, final: bool = False) -> None:
        """Hand on each new complete line (and, once ffmpeg has exited — ``final`` — its
        unterminated last one); empty the file once ``max_bytes`` of it have been read."""
        try:
            with self.path.open("rb") as f:
                if os.fstat(f.fileno()).st_size < self._offset:  # emptied: from the start
                    self._offset = 0
                f.seek(self._offset)
                data = f.read()
                self._offset = f.tell()
        except FileNotFoundError:
            data = b""
        *lines, self._partial = (self._partial + data).split(b"\n")
        if len(self._partial) > _MAX_LINE:
            lines.append(self._partial[:_MAX_LINE])
            self._partial = b""
        if final and self._partial:
            lines.append(self._partial)
            self._partial = b""
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._on_line(line)
        if not final and self._offset >= self._max:
            # a line ffmpeg writes between the read above and this is lost: acceptable for
            # a flood of warnings, and what keeps the file from growing with the run
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self.path, 0)
            self._offset = 0

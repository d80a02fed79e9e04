"""Which files of ffmpeg's segment muxer are finished? Read from its CSV segment list.

ffmpeg's ``segment`` muxer (``-segment_list L -segment_list_type csv``) appends a line
``name,start,end`` (media seconds) when a segment ends — but *before* it closes (flushes)
that file; the next segment file is created only after the close. So a listed segment is
final once a file that is not listed exists, or once ffmpeg has exited; until then only
the segments listed before the last one are. Shared by the recorder and the demo camera.

``stop_gracefully`` ends ffmpeg so that its open segment is finalized, not cut.
"""

from __future__ import annotations

import contextlib
import csv
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ListedSegment", "finished", "read_segment_list", "stop_gracefully"]


@dataclass(frozen=True, slots=True)
class ListedSegment:
    """One line of ffmpeg's segment list: the file and its media start/end time."""

    name: str  # base name of the segment file
    start: float | None  # media time of its first packet (seconds), as ffmpeg saw it
    end: float | None


def _seconds(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def read_segment_list(path: Path) -> list[ListedSegment]:
    """The complete lines of the list (a line still being written is ignored), in order,
    each name once."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    complete = text[: text.rfind("\n") + 1]
    out: list[ListedSegment] = []
    seen: set[str] = set()
    for row in csv.reader(complete.splitlines()):
        name = Path(row[0]).name if row and row[0] else ""
        if not name or name in seen:
            continue
        seen.add(name)
        start = _seconds(row[1]) if len(row) > 1 else None
        end = _seconds(row[2]) if len(row) > 2 else None
        out.append(ListedSegment(name, start, end))
    return out


def finished(
    listed: list[ListedSegment], files: Iterable[str], *, exited: bool
) -> list[ListedSegment]:
    """The listed segments that ffmpeg has closed. ``files``: names of the segment files
    it has created so far (from this run)."""
    if not listed:
        return []
    names = {s.name for s in listed}
    newer = any(f not in names for f in files)
    return listed if exited or newer else listed[:-1]


def stop_gracefully(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int:
    """Let ffmpeg finish its open segment ('q' on stdin, then SIGINT); SIGKILL after
    ``grace`` seconds. Returns its exit status."""
    if proc.poll() is not None:
        return proc.returncode
    if proc.stdin is not None:  # stdin already gone: the signal below does it
        with contextlib.suppress(OSError):
            proc.stdin.write(b"q")
        with contextlib.suppress(OSError):
            proc.stdin.close()
    for sig in (None, signal.SIGINT):
        if sig is not None:
            with contextlib.suppress(OSError):
                proc.send_signal(sig)
        try:
            return proc.wait(timeout=grace / 2)
        except subprocess.TimeoutExpired:
            continue
    proc.kill()
    return proc.wait()

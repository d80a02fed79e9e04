"""What a crash leaves behind, made usable again.

Each run directory keeps ``state.json`` (``RunState``): which segments were handed on,
where the run's next segment starts and ffmpeg's pid — so segments left by a killed
recorder are salvaged on the next start, on the same timeline. The segment a killed ffmpeg
was writing ends inside a fragment: it is cut after its last complete fragment, and the
cut-off rest is kept apart to be quarantined (``split_incomplete_fragment``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from camvault import mp4box

log = logging.getLogger(__name__)

__all__ = ["RunState", "header_only", "read_state", "split_incomplete_fragment", "write_state"]

STATE_FILE = "state.json"


@dataclass(frozen=True, slots=True)
class RunState:
    """A run's progress as saved in its directory: enough to continue after a crash."""

    run_id: str
    handed: frozenset[str] = frozenset()
    next_start: datetime | None = None  # where the run's next segment starts
    ffmpeg_pid: int | None = None


def write_state(run_dir: Path, state: RunState) -> None:
    """Replace the run's state file atomically. Raises ``OSError`` (disk full …)."""
    data = {
        "run_id": state.run_id,
        "handed": sorted(state.handed),
        "next_start": state.next_start.isoformat() if state.next_start else None,
        "ffmpeg_pid": state.ffmpeg_pid,
    }
    tmp = run_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, run_dir / STATE_FILE)


def read_state(run_dir: Path) -> RunState:
    """The run's saved state; an unreadable or missing file gives a blank state named after
    the directory (its segments are still salvaged, on a fresh timeline)."""
    try:
        data = json.loads((run_dir / STATE_FILE).read_text())
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except (OSError, ValueError):
        data = {}
    pid = data.get("ffmpeg_pid")
    nxt = data.get("next_start")
    try:
        next_start = datetime.fromisoformat(nxt) if isinstance(nxt, str) and nxt else None
    except ValueError:
        next_start = None
    return RunState(
        run_id=str(data.get("run_id") or run_dir.name),
        handed=frozenset(str(n) for n in data.get("handed") or ()),
        next_start=next_start,
        ffmpeg_pid=pid if isinstance(pid, int) else None,
    )


def header_only(path: Path) -> bool:
    """True when a killed ffmpeg's segment holds its complete header boxes (ftyp, moov)
    and not one byte of a fragment: it was killed before the segment's first fragment
    (< 1 s in), so there is no footage to keep — nothing for quarantine to hold."""
    size = path.stat().st_size
    with path.open("rb") as f:
        for box in mp4box.walk(f, size):
            if box.fault or box.kind in (b"moof", b"mdat"):
                return False
    return size > 0


def split_incomplete_fragment(path: Path) -> Path | None:
    """A fragmented MP4 whose ffmpeg was killed ends inside its last fragment, so the
    whole file fails the probe. Move those trailing bytes to ``seg_N.tail.mp4`` (kept: it
    is quarantined like any bad file) and cut the file after its last complete fragment.
    None when there is nothing to split off: the file is whole, or it holds no complete
    fragment at all (then it is judged, and quarantined, as it is)."""
    size = path.stat().st_size
    good = fragments = 0
    with path.open("rb") as f:
        for box in mp4box.walk(f, size):
            if box.fault:
                break
            if box.kind != b"moof":  # a moof is complete only with the mdat after it
                good = box.end
                fragments += box.kind == b"mdat"
        if good == size or not fragments:
            return None
        f.seek(good)
        tail = path.with_name(path.name.removesuffix(".mp4") + ".tail.mp4")
        try:
            with tail.open("wb") as out:
                shutil.copyfileobj(f, out)
                out.flush()
                os.fsync(out.fileno())
        except OSError:
            tail.unlink(missing_ok=True)  # the file is left whole; split again later
            raise
    os.truncate(path, good)
    return tail

"""The keyframe probes of an export job, by the ffmpeg binary instead of PyAV.

An export job plans its cut with the same two questions as the streamed routes (each
recording's first video timestamp; the keyframes around the requested start in the first
one), but runs where memory, not latency, is what counts: ``camvault export`` must stay
small while its ffmpeg runs. PyAV's libav shared libraries alone are ~22 MB of resident
pages once imported (never unloaded), so the job path asks the ffmpeg binary it cuts with
anyway: ``-c copy -f framecrc`` lists the packets of the video stream (pts in the stream's
time base, non-key packets flagged ``F=0x…``) without decoding anything. One short-lived
ffmpeg at a time (its ~35 MB ends before the cutting ffmpeg starts); the answers are those
of the demuxer that then applies the concat in/out points.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction

from camvault.errors import InvalidMedia, StorageUnavailable
from camvault.export.clip import Keyframes, Source, search_back

_EPS = 1e-6
_TB = re.compile(r"#tb 0: (\d+)/(\d+)")
_URL = re.compile(r"(?:https?|file)://\S+")
# what libav says when the object store, not the file, is the problem
_UNAVAILABLE = ("Server returned", "Connection refused", "timed out", "Connection reset", "I/O")
_NOPTS = -(2**63)
_TIMEOUT = 60.0  # seconds for one probe: ffmpeg's own rw_timeout (30 s) comes first


class _Packets:
    """ffmpeg listing the video packets of ``url`` from ``ss`` (absolute seconds) on:
    iterate for (seconds from ``origin_pts``, is keyframe); pts are the file's own
    (``-copyts``), so they compare with PyAV's and the concat demuxer's."""

    def __init__(self, ffmpeg: str, url: str, *, ss: float | None, frames: int | None) -> None:
        http = url.startswith(("http://", "https://"))
        self._cmd = [
            ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
            "-rw_timeout", "30000000", *(["-reconnect", "1"] if http else []),
            "-copyts", *(["-seek_timestamp", "1", "-ss", f"{ss:.6f}"] if ss is not None else []),
            "-i", url, "-map", "0:v:0", "-c", "copy",
            *(["-frames:v", str(frames)] if frames else []), "-f", "framecrc", "pipe:1",
        ]  # fmt: skip

    def run(self, stop: Callable[[int, bool, Fraction], bool]) -> tuple[Fraction, list[int]]:
        """(time base, pts of the packets read) until ``stop(pts, key, tb)`` says so."""
        tb: Fraction | None = None
        seen: list[int] = []
        # stderr to a file: a damaged recording may complain more than a pipe holds
        with (
            tempfile.TemporaryFile() as err,
            subprocess.Popen(self._cmd, stdout=subprocess.PIPE, stderr=err, text=True) as proc,
        ):
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    if line.startswith("#"):
                        if m := _TB.fullmatch(line.strip()):
                            tb = Fraction(int(m[1]), int(m[2]))
                        continue
                    f = [x.strip() for x in line.split(",")]
                    if len(f) < 6 or tb is None or int(f[2]) == _NOPTS:
                        continue
                    flags = next((x[2:] for x in f[6:] if x.startswith("F=")), None)
                    seen.append(int(f[2]))
                    if stop(seen[-1], flags is None or bool(int(flags, 16) & 1), tb):
                        break
            finally:
                proc.kill()  # done (or failed): the rest of the file is not needed
                proc.wait(_TIMEOUT)
            err.seek(0)
            stderr = err.read().decode("utf-8", "replace")
        if tb is None or (not seen and proc.returncode != 0):
            raise _error(stderr)
        return tb, seen


def _error(stderr: str) -> Exception:
    # never the URL: it is a presigned link to the whole object (see media._reason)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    reason = _URL.sub("<presigned url>", lines[-1] if lines else "no video stream")
    reason = re.sub(r"^\[[^\]]*\]\s*", "", reason)[:200]
    if any(u in stderr for u in _UNAVAILABLE):
        return StorageUnavailable(f"cannot read recording: {reason}")
    return InvalidMedia(f"cannot read recording: {reason}")


def probe_origin(ffmpeg: str, url: str) -> float:
    """The file's first video timestamp in seconds (concat in/out points are absolute)."""
    tb, pts = _Packets(ffmpeg, url, ss=None, frames=1).run(lambda *_: True)
    if not pts:
        raise InvalidMedia("cannot read recording: no video packet")
    return float(pts[0] * tb)


def probe_keyframes(
    ffmpeg: str, url: str, offset: float, *, origin: float, horizon: float = 30.0
) -> Keyframes:
    """Keyframes around ``offset`` (seconds from ``origin``, the file's first video
    timestamp), as ``media.probe_keyframes`` answers: ffmpeg seeks through the index, then
    the packets are read forward at most to the keyframe at or after ``offset``. Should
    the seek land past the keyframe at or before it (ffmpeg's seek goes by decoding time;
    with B-frames that can be the next one), it starts again further back."""
    return search_back(
        offset, lambda ss: _keyframes(ffmpeg, url, offset, origin, ss or None, horizon)
    )


def _keyframes(
    ffmpeg: str, url: str, offset: float, origin: float, ss: float | None, horizon: float
) -> Keyframes:
    found: dict[str, float] = {}

    def stop(pts: int, key: bool, tb: Fraction) -> bool:
        # from the origin's pts, exactly: a keyframe at the offset must compare equal
        t = float((pts - round(Fraction(origin) / tb)) * tb)
        if t > offset + horizon:
            return True
        if key:
            if t <= offset + _EPS:
                found["before"] = t
            if t >= offset - _EPS:
                found["after"] = t
                return True
        return False

    at = None if ss is None else origin + ss
    _Packets(ffmpeg, url, ss=at, frames=None).run(stop)
    return Keyframes(found.get("before"), found.get("after"))


def with_origins(ffmpeg: str, sources: list[Source]) -> list[Source]:
    """Sources with their probed origins, one ffmpeg after the other (each is ~35 MB)."""
    return [replace(s, origin=probe_origin(ffmpeg, s.url)) for s in sources]

"""The synthetic camera that ``camvault run`` records when no real camera is configured.

One ffmpeg process renders a live ``testsrc2`` pattern (``-re``: in real time), encodes it
as H.264 (libx264 ultrafast, 1 s GOP, no B-frames) and cuts it with the segment muxer into
``{prefix}_YYYYMMDDTHHMMSSZ.mp4`` files (UTC wall clock at segment start, faststart MP4).

A segment is handed on only once ffmpeg has finished it. The segment muxer appends a line
to its CSV list when a segment ends, but it does so *before* it closes (flushes) that
file; the next segment file is created only after the close. So a listed segment is final
once a newer, unlisted segment file exists or ffmpeg has exited; until then only the
segments listed before the last one are.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path

import imageio_ffmpeg

from camvault.segmenter import finished, read_segment_list, stop_gracefully

__all__ = ["DemoCamera"]

_PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class DemoCamera:
    """A live H.264 test-pattern camera writing finished segments into ``out_dir``.

    ``segment_seconds`` must be at least 2: file names have one-second resolution. The
    segment list and ffmpeg's log live in ``state_dir`` (default ``out_dir/.demo``).
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        segment_seconds: int = 300,
        ffmpeg: str | None = None,
        size: str = "640x360",
        fps: int = 15,
        prefix: str = "demo",
        state_dir: Path | None = None,
    ) -> None:
        if segment_seconds < 2:
            raise ValueError("segment_seconds must be >= 2")
        if not _PREFIX_RE.fullmatch(prefix):
            raise ValueError(f"invalid segment file prefix {prefix!r}")
        self.out_dir = Path(out_dir)
        self.state_dir = Path(state_dir) if state_dir else self.out_dir / ".demo"
        self.segment_seconds = segment_seconds
        self.ffmpeg = ffmpeg or imageio_ffmpeg.get_ffmpeg_exe()
        self.size = size
        self.fps = fps
        self.prefix = prefix
        self.list_path = self.state_dir / "segments.csv"
        self.log_path = self.state_dir / "ffmpeg.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._handed: set[str] = set()
        self._before: set[str] = set()  # segment files already in out_dir at start()
        self._lock = threading.Lock()

    def command(self) -> list[str]:
        """The ffmpeg command line (for logs and tests)."""
        pattern = self.out_dir / f"{self.prefix}_%Y%m%dT%H%M%SZ.mp4"
        return [
            self.ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={self.size}:rate={self.fps}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-bf",
            "0",
            "-g",
            str(self.fps),
            "-keyint_min",
            str(self.fps),
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "segment",
            "-segment_time",
            str(self.segment_seconds),
            "-reset_timestamps",
            "1",
            "-segment_format",
            "mp4",
            "-segment_format_options",
            "movflags=+faststart",
            "-segment_list",
            str(self.list_path),
            "-segment_list_type",
            "csv",
            "-strftime",
            "1",
            str(pattern),
        ]

    def start(self) -> None:
        """Start ffmpeg (no-op if it is already running)."""
        if self.is_running:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.list_path.unlink(missing_ok=True)  # a list from an earlier run is stale
        self._before = {p.name for p in self._segment_files()}
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "TZ": "UTC"},  # -strftime uses local time
                start_new_session=True,  # a terminal Ctrl-C is ours to relay, not ffmpeg's
            )

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        """ffmpeg's exit status once it has exited, else None."""
        return None if self._proc is None else self._proc.poll()

    def stop(self, grace: float = 10.0) -> None:
        """Let ffmpeg finish the current segment ('q', then SIGINT); SIGKILL after ``grace``."""
        if self._proc is not None:
            stop_gracefully(self._proc, grace)

    def finished_segments(self) -> list[Path]:
        """Completed segment files not returned by an earlier call, oldest first."""
        with self._lock:
            listed = read_segment_list(self.list_path)
            exited = self._proc is not None and self._proc.poll() is not None
            files = [p.name for p in self._segment_files() if p.name not in self._before]
            final = [s.name for s in finished(listed, files, exited=exited)]
            fresh = [n for n in final if n not in self._handed]
            self._handed.update(fresh)
            return [self.out_dir / n for n in fresh]

    def leftover_segments(self) -> list[Path]:
        """Segment files an earlier run left in ``out_dir``; ``finished_segments()`` skips them.

        Before ``start()``: every segment file there; after: those present at ``start()``
        that still exist. An earlier run may have been killed mid-segment, so probe them
        before use (a cut one fails with ``InvalidMedia``).
        """
        if self._proc is None:
            return self._segment_files()
        return sorted(self.out_dir / n for n in self._before if (self.out_dir / n).exists())

    def _segment_files(self) -> list[Path]:
        return sorted(self.out_dir.glob(f"{self.prefix}_*Z.mp4"))

    def __enter__(self) -> DemoCamera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Real video files for tests, made with the ffmpeg binary bundled with imageio-ffmpeg.

Every generator writes ``path`` (the container follows the suffix: ``.mp4``/``.mov``/
``.mkv``/``.ts``; ``.h264`` gives a raw elementary stream), returns it, and raises
``RuntimeError`` with ffmpeg's stderr when ffmpeg fails. ``faststart`` (moov before mdat)
applies to MP4/MOV only; ``gop`` defaults to one second. The defaults (320x240, 15 fps,
2 s, ``ultrafast``) keep each file well under a second to make on a small box.
"""

from __future__ import annotations

import os
import random
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

__all__ = [
    "FFMPEG",
    "make_audio_only",
    "make_empty",
    "make_h264",
    "make_h265",
    "make_mjpeg",
    "make_random_bytes",
    "make_truncated",
]


def _run(args: list[str]) -> None:
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")


def _iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _make(
    path: Path,
    video_args: list[str],
    *,
    seconds: float,
    size: str,
    fps: int,
    gop: int | None,
    audio: bool,
    creation_time: datetime | None,
    faststart: bool,
    pix_fmt: str = "yuv420p",
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = max(1, round(seconds * fps))
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    args += ["-map", "0:v"]
    if audio:
        args += ["-map", "1:a", "-c:a", "aac", "-b:a", "64k"]
    args += [*video_args, "-pix_fmt", pix_fmt, "-frames:v", str(frames)]
    args += ["-g", str(gop if gop is not None else fps)]
    if creation_time is not None:
        args += ["-metadata", f"creation_time={_iso(creation_time)}"]
    if faststart and path.suffix.lower() in {".mp4", ".mov", ".m4v"}:
        args += ["-movflags", "+faststart"]
    _run([*args, str(path)])
    return path


def make_h264(
    path: Path,
    seconds: float = 2.0,
    size: str = "320x240",
    fps: int = 15,
    gop: int | None = None,
    audio: bool = False,
    creation_time: datetime | None = None,
    faststart: bool = True,
    lossless: bool = False,
) -> Path:
    """H.264 test pattern (libx264 ultrafast, no B-frames; GOP = ``gop`` or 1 s).
    ``lossless`` (qp 0) makes big files quickly, e.g. to exceed a multipart threshold."""
    vargs = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0"]
    if lossless:
        vargs += ["-qp", "0"]
    return _make(
        path,
        vargs,
        seconds=seconds,
        size=size,
        fps=fps,
        gop=gop,
        audio=audio,
        creation_time=creation_time,
        faststart=faststart,
    )


def make_h265(
    path: Path,
    seconds: float = 2.0,
    size: str = "320x240",
    fps: int = 15,
    gop: int | None = None,
    audio: bool = False,
    creation_time: datetime | None = None,
    faststart: bool = True,
) -> Path:
    """H.265 test pattern (libx265 ultrafast, no B-frames, tagged ``hvc1`` in MP4/MOV)."""
    vargs = [
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "log-level=error:bframes=0",
    ]
    if Path(path).suffix.lower() in {".mp4", ".mov", ".m4v"}:
        vargs += ["-tag:v", "hvc1"]
    return _make(
        path,
        vargs,
        seconds=seconds,
        size=size,
        fps=fps,
        gop=gop,
        audio=audio,
        creation_time=creation_time,
        faststart=faststart,
    )


def make_mjpeg(
    path: Path,
    seconds: float = 2.0,
    size: str = "320x240",
    fps: int = 15,
    gop: int | None = None,
    audio: bool = False,
    creation_time: datetime | None = None,
    faststart: bool = True,
) -> Path:
    """Motion-JPEG test pattern: a real, playable video that camvault must refuse."""
    return _make(
        path,
        ["-c:v", "mjpeg", "-q:v", "8"],
        seconds=seconds,
        size=size,
        fps=fps,
        gop=gop,
        audio=audio,
        creation_time=creation_time,
        faststart=faststart,
        pix_fmt="yuvj420p",
    )


def make_truncated(src: Path, dst: Path, fraction: float = 0.6) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst`` (an upload/copy cut short)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError("fraction must be in [0, 1)")
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def make_random_bytes(path: Path, n: int = 64 * 1024, seed: int | None = None) -> Path:
    """``n`` random bytes (name it ``.mp4`` to pose as a video); ``seed`` makes them fixed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(n) if seed is None else random.Random(seed).randbytes(n)
    path.write_bytes(data)
    return path


def make_audio_only(path: Path, seconds: float = 2.0) -> Path:
    """An AAC-only file (a valid container with no video stream)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    src = f"sine=frequency=440:sample_rate=48000:duration={seconds}"
    _run(["-f", "lavfi", "-i", src, "-c:a", "aac", "-b:a", "64k", str(path)])
    return path


def make_empty(path: Path) -> Path:
    """A zero-byte file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def make_big_h264(path: Path) -> Path:
    """~8 MB of noisy lossless H.264: above the 5 MB multipart threshold."""
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
         "-i", "testsrc2=size=640x480:rate=15:duration=1", "-vf", "noise=alls=60:allf=t",
         "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p",
         "-g", "15", str(path)],
        check=True,
    )  # fmt: skip
    return path

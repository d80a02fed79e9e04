"""What one run's ffmpeg is told to do: read the camera's stream layout (``probe_stream``),
hand it the camera URL without putting the URL on its command line (``write_source``),
and record it by stream copy into fragmented MP4 segments (``ffmpeg_command``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "FFMPEG_ENV",
    "INPUT_OPTIONS",
    "MP4_AUDIO_CODECS",
    "SEGMENT_PATTERN",
    "SOURCE_FILE",
    "VIDEO_CODECS",
    "ffmpeg_command",
    "probe_stream",
    "write_source",
]

VIDEO_CODECS = ("h264", "hevc")
MP4_AUDIO_CODECS = ("aac",)  # what we copy into MP4; anything else is dropped (and said so)
SEGMENT_PATTERN = "seg_%06d.mp4"
SOURCE_FILE = "source.ffconcat"
# what the concat demuxer may open on ffmpeg's behalf: the script itself, then the camera
_PROTOCOLS = "file,rtsp,rtsps,rtp,srtp,tcp,udp,tls"


def probe_stream(url: str, timeout: float) -> tuple[str, list[str]]:
    """Connect once and read the stream layout: (video codec, audio codecs). Raises
    ``OSError`` / ``av.FFmpegError`` when the camera cannot be reached."""
    import av

    options = {
        "rtsp_transport": "tcp",
        "timeout": str(int(timeout * 1e6)),
        "analyzeduration": "0",
        "probesize": "65536",
    }
    with av.open(url, options=options, timeout=timeout) as c:
        video = next((s.codec_context.name for s in c.streams.video), "")
        audio = [s.codec_context.name for s in c.streams.audio]
    return video, audio


def write_source(run_dir: Path, url: str, *, timeout_seconds: float = 10.0) -> Path:
    """The camera URL in a 0600 ffconcat script that ffmpeg reads, instead of on its command
    line: any local user can read a process's argv from /proc/PID/cmdline, and ffmpeg takes
    RTSP credentials only inside the URL. The RTSP input options go with it (``option``)."""
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in url):
        raise ValueError("camera URL contains control characters")
    quoted = url.replace("'", "'\\''")  # ffconcat quoting: close, escaped quote, reopen
    # ffmpeg's RTSP demuxer survives one timed-out socket read and gives up on the second
    # (a silent camera ends the run), so half the budget each
    timeout_us = int(timeout_seconds / 2 * 1e6)
    text = (
        "ffconcat version 1.0\n"
        f"file '{quoted}'\n"
        "option rtsp_transport tcp\n"
        f"option timeout {timeout_us}\n"
    )
    path = run_dir / SOURCE_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def forget_source(run_dir: Path) -> None:
    """Remove the URL script: ffmpeg has read it (or will never read it again)."""
    (run_dir / SOURCE_FILE).unlink(missing_ok=True)


# What keeps each camera's ffmpeg small, measured by bench/recorder_cpu.py (PSS per
# camera). One thread for the decoder ffmpeg opens while probing the stream: by default
# one per core, so on a many-core node each camera briefly spawns a pool it never uses
# (stream copy decodes nothing afterwards). Smaller -probesize/-analyzeduration measured
# no saving, and a probe that misses the SPS fails on cameras whose SDP lacks it: not used.
INPUT_OPTIONS: tuple[str, ...] = ("-threads", "1")
# glibc gives each of ffmpeg's threads its own malloc arena; one arena measured ~0.9 MB
# (~9 %) less private memory per camera, at no CPU cost for ffmpeg's few small allocations.
FFMPEG_ENV: dict[str, str] = {"MALLOC_ARENA_MAX": "1"}


# Each segment's MP4 muxer: fragmented (a moov up front, then moof+mdat fragments), so
# whatever ends ffmpeg abruptly leaves every complete fragment readable
# (``salvage.split_incomplete_fragment`` cuts off the rest). What bounds that loss:
# - frag_duration: a fragment at least every second (and at every keyframe), so at most
#   ~1 s of footage is ever held in ffmpeg's memory, whatever the camera's GOP.
# - flush_packets=1: each fragment is written to the file as it completes. ffmpeg's default
#   only writes when its 32 KB I/O buffer is full — at a low bitrate that is the whole
#   segment — and a node killed with kill -9 left a 28-byte ftyp stub: ffmpeg got SIGINT
#   (PR_SET_PDEATHSIG) more than once (see ``launcher``, which now prevents that) and
#   exited (255) without writing the trailer.
#   A fragment holds many packets, so this is one write(2) per fragment, not per packet.
MP4_OPTIONS = ":".join(
    (
        "movflags=+frag_keyframe+empty_moov+default_base_moof",
        "frag_duration=1000000",  # µs
        "flush_packets=1",
    )
)


def ffmpeg_command(
    ffmpeg: str,
    source: Path,
    run_dir: Path,
    segment_seconds: int,
    *,
    audio: bool,
) -> list[str]:
    """The ffmpeg command of one run: RTSP/TCP in (the URL read from ``source``, see
    ``write_source``), stream copy, fragmented MP4 segments."""
    maps = ["-map", "0:v:0"] + (["-map", "0:a:0"] if audio else [])
    return [
        ffmpeg,
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "warning",
        "-f",
        "concat",
        "-safe",
        "0",  # the "file" is a URL, not a relative path
        "-protocol_whitelist",
        _PROTOCOLS,
        *INPUT_OPTIONS,
        "-i",
        str(source),
        *maps,
        "-c",
        "copy",
        "-f",
        "segment",
        "-segment_time",
        str(segment_seconds),
        "-reset_timestamps",
        "1",
        "-segment_format",
        "mp4",
        "-segment_format_options",
        MP4_OPTIONS,
        "-segment_list",
        str(run_dir / "list.csv"),
        "-segment_list_type",
        "csv",
        str(run_dir / SEGMENT_PATTERN),
    ]

"""The recorder: pull H.264/H.265 from RTSP cameras into gapless MP4 segments in the spool.

One supervised ffmpeg process per camera, **stream copy only** (never a transcode), RTSP
over TCP, cut by the segment muxer on keyframes into fragmented MP4 files (a fragment at
every keyframe and at least every second, each written out as it completes: an ffmpeg
killed mid-segment leaves all but its last ≤ 1 s readable, salvaged on the next start). A
**run** is one continuous connection: its segments abut exactly. Where to look:

- ``camera`` — the run loop: ``CameraRecorder`` (one camera, run after run, reconnecting
  with backoff; hands finished segments to the spool) and ``Recorder`` (all cameras).
- ``command`` — the ffmpeg command line, the camera URL in a 0600 script instead of argv,
  and ``probe_stream`` (the stream layout before a run starts).
- ``supervision`` — starting and stopping a run's ffmpeg (PR_SET_PDEATHSIG for fleet nodes,
  a leftover ffmpeg of a killed recorder), and ``Run``, one run's directory and process.
- ``launcher`` — a fleet node's ffmpeg's single-threaded parent, so that a killed node's
  ffmpeg gets exactly one SIGINT and finishes its segment.
- ``salvage`` — after a crash: the run's saved state, and cutting the segment a killed
  ffmpeg was writing after its last complete fragment.
- ``timeline`` — when each segment started (the camera's clock is trusted for durations
  only), pure logic.
- ``redact`` — credentials out of every log line (``mask_url``, ``Redactor``).
- ``metrics`` — per-camera Prometheus metrics, served on the API's ``/metrics``.
"""

from __future__ import annotations

from camvault.recorder.camera import CameraRecorder, CameraSource, Recorder, RunLog
from camvault.recorder.command import ffmpeg_command, probe_stream, write_source
from camvault.recorder.metrics import REGISTRY
from camvault.recorder.redact import Redactor, mask_url
from camvault.recorder.salvage import split_incomplete_fragment
from camvault.recorder.timeline import Placement, Timeline

__all__ = [
    "REGISTRY",
    "CameraRecorder",
    "CameraSource",
    "Placement",
    "Recorder",
    "Redactor",
    "RunLog",
    "Timeline",
    "ffmpeg_command",
    "mask_url",
    "probe_stream",
    "split_incomplete_fragment",
    "write_source",
]

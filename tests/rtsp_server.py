"""A real RTSP camera for the recorder tests: GStreamer's RTSP server.

Two halves in one file:

- run as a script by Debian's ``/usr/bin/python3`` (which has ``gi`` and the GStreamer RTSP
  server bindings; the project venv has neither), it serves a live stream like an IP
  camera's: H.264 (or H.265) without B-frames, a keyframe every ``--gop`` frames, RTP over
  TCP or UDP, optionally with AAC audio. With ``--pattern counter`` every frame carries its
  own frame number as a 16-bit barcode (see ``frame_number``), so a test can prove that no
  frame was lost or duplicated at a segment boundary.
- imported by the tests, ``RtspCamera`` starts and stops that script as a subprocess, and
  ``unavailable()`` says why it cannot run here (the tests skip with that reason).

The Debian packages are installed by ``scripts/test`` (root + apt-get only).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SYSTEM_PYTHON = os.environ.get("CAMVAULT_TEST_GST_PYTHON", "/usr/bin/python3")
DEBS = (
    "gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad"
)
# The counter pattern: 16 vertical bands, white = 1, most significant bit left.
BITS = 16
_CHECK = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
    "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
    "import sys; missing = [e for e in sys.argv[1:] if Gst.ElementFactory.find(e) is None];"
    "print(' '.join(missing))"
)


# --- test side (project venv) -----------------------------------------------------------
def unavailable(*elements: str) -> str | None:
    """Why the RTSP test server cannot run here, or None when it can."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found (Debian's python3 runs the GStreamer RTSP server)"
    need = ("x264enc", "rtph264pay", "videotestsrc", "appsrc", *elements)
    proc = subprocess.run(
        [SYSTEM_PYTHON, "-c", _CHECK, *need], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"GStreamer RTSP server not importable ({last}); install: {DEBS}"
    if proc.stdout.strip():
        return f"GStreamer elements missing: {proc.stdout.strip()}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspCamera:
    """The RTSP server as a subprocess; ``url`` is where the stream is."""

    def __init__(
        self,
        log_path: Path,
        *,
        port: int | None = None,
        mount: str = "/cam",
        user: str = "",
        password: str = "",
        **options: Any,
    ) -> None:
        self.port = port or free_port()
        self.mount = mount
        self.user, self.password = user, password
        self.options = options
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        cred = f"{self.user}:{self.password}@" if self.user else ""
        return f"rtsp://{cred}127.0.0.1:{self.port}{self.mount}"

    def command(self) -> list[str]:
        cmd = [SYSTEM_PYTHON, __file__, "--port", str(self.port), "--mount", self.mount]
        if self.user:
            cmd += ["--user", self.user, "--password", self.password]
        for key, value in self.options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                cmd.append(flag)
            elif value not in (False, None):
                cmd += [flag, str(value)]
        return cmd

    def start(self, timeout: float = 20.0) -> RtspCamera:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command(), stdout=subprocess.PIPE, stderr=log, start_new_session=True
            )
        assert self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = self._proc.stdout.readline()  # "READY <port>" once it listens
        if not line.startswith(b"READY") or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"RTSP server did not start: {self.log_path.read_text()[-2000:]}")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        self._proc = None

    def __enter__(self) -> RtspCamera:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def frame_number(luma_row: bytes, width: int) -> int:
    """Read the counter barcode from one row of a decoded frame's luma plane."""
    band = width // BITS
    value = 0
    for bit in range(BITS):
        value = value << 1 | (luma_row[bit * band + band // 2] > 128)
    return value


# --- server side (Debian's python3 with gi) ---------------------------------------------
def _video_source(a: argparse.Namespace) -> str:
    w, h = a.size.split("x")
    caps = f"video/x-raw,format=I420,width={w},height={h},framerate={a.fps}/1"
    if a.pattern == "counter":
        return f"appsrc name=counter is-live=true format=time caps={caps}"
    return f"videotestsrc is-live=true pattern={a.pattern} ! {caps}"


def _encoder(a: argparse.Namespace) -> str:
    if a.codec == "h265":
        return (
            f"x265enc tune=zerolatency speed-preset=ultrafast bitrate={a.bitrate} "
            f'key-int-max={a.gop} option-string="bframes=0:keyint={a.gop}:min-keyint={a.gop}"'
            " ! h265parse ! rtph265pay name=pay0 pt=96 config-interval=-1"
        )
    # CBR with filler NAL units: the stream really is `bitrate` kbit/s, however simple the
    # picture (what the benchmark needs); keyframes exactly every `gop` frames.
    opts = f"keyint={a.gop}:min-keyint={a.gop}:scenecut=0"
    if a.cbr:
        opts += f":nal-hrd=cbr:filler=1:vbv-maxrate={a.bitrate}:vbv-bufsize={a.bitrate}"
    return (
        f"x264enc tune=zerolatency sliced-threads=false speed-preset=ultrafast bframes=0 "
        f"bitrate={a.bitrate} "
        f'key-int-max={a.gop} option-string="{opts}" ! video/x-h264,profile=baseline '
        "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1"
    )


def _launch(a: argparse.Namespace) -> str:
    parts = [f"{_video_source(a)} ! {_encoder(a)}"]
    if a.audio:
        parts.append(
            "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=16000,channels=1 "
            "! voaacenc bitrate=32000 ! aacparse ! rtpmp4gpay name=pay1 pt=97"
        )
    if a.pcma:
        parts.append(
            "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=8000,channels=1 "
            "! alawenc ! rtppcmapay name=pay1 pt=8"
        )
    return "( " + " ".join(parts) + " )"


def _counter_frames(a: argparse.Namespace, gst: Any) -> Any:
    """need-data handler pushing barcode frames with exact timestamps."""
    w, h = (int(v) for v in a.size.split("x"))
    band = w // BITS
    chroma = bytes([128]) * (w * h // 2)
    duration = gst.SECOND // a.fps

    def frame(n: int) -> bytes:
        row = bytearray()
        for bit in range(BITS):
            on = n >> (BITS - 1 - bit) & 1
            row += bytes([235 if on else 16]) * band
        row += bytes([16]) * (w - len(row))
        return bytes(row) * h + chroma

    def need_data(src: Any, _length: int, state: dict[str, int]) -> None:
        n = state["n"]
        buf = gst.Buffer.new_wrapped(frame(n & 0xFFFF))
        buf.pts = buf.dts = n * duration
        buf.duration = duration
        state["n"] = n + 1
        src.emit("push-buffer", buf)

    return need_data


def serve(argv: list[str]) -> int:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mount", default="/cam")
    p.add_argument("--codec", choices=("h264", "h265"), default="h264")
    p.add_argument("--size", default="320x240")
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--gop", type=int, default=30)
    p.add_argument("--bitrate", type=int, default=400, help="kbit/s")
    p.add_argument("--cbr", action="store_true", help="constant bitrate (filler NAL units)")
    p.add_argument("--pattern", default="counter", help="'counter' or a videotestsrc pattern")
    p.add_argument("--audio", action="store_true", help="add an AAC audio stream")
    p.add_argument("--pcma", action="store_true", help="add a G.711 A-law audio stream")
    p.add_argument("--shared", action="store_true", help="one encoder for every client")
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    a = p.parse_args(argv)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(_launch(a))
    factory.set_shared(a.shared)
    if a.pattern == "counter":
        handler = _counter_frames(a, Gst)

        def configure(_factory: Any, media: Any) -> None:
            src = media.get_element().get_by_name_recurse_up("counter")
            src.connect("need-data", handler, {"n": 0})

        factory.connect("media-configure", configure)
    if a.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", a.user)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password), token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_permission_for_role(a.user, "media.factory.access", True)
        perms.add_permission_for_role(a.user, "media.factory.construct", True)
        factory.set_permissions(perms)
    server.get_mount_points().add_factory(a.mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {a.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {a.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))

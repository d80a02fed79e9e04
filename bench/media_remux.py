"""Benchmark: the cost of ``GET /api/recordings/{id}/media.ts`` — ffmpeg remuxing one
5-minute segment to MPEG-TS by stream copy — for each container camvault stores.

Makes a 300 s 640x360 15 fps H.264 segment as faststart MP4, fragmented MP4 (what the
recorder writes) and MKV, then runs the route's exact ffmpeg command on each (from a local
file: the route reads the presigned URL of a loopback S3, which adds little), measuring
time to first byte (what a viewer waits for before a segment can start), total wall time
and ffmpeg's CPU time. Prints a table, writes bench/results/media_remux.json.

    .venv/bin/python bench/media_remux.py [--seconds 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True
    )


def make(dirpath: Path, seconds: int) -> dict[str, Path]:
    base = dirpath / "plain.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=15:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", "15",
        "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(base),
    )  # fmt: skip
    frag = dirpath / "fragmented.mp4"
    _ffmpeg("-i", str(base), "-c", "copy", "-movflags", "frag_keyframe+empty_moov", str(frag))
    mkv = dirpath / "ingested.mkv"
    _ffmpeg("-i", str(base), "-c", "copy", str(mkv))
    return {"mp4 (faststart)": base, "fmp4 (recorder)": frag, "mkv": mkv}


def remux(src: Path) -> dict[str, float]:
    cmd = [
        FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(src),
        "-map", "0:v:0", "-map", "0:a:0?", "-c:v", "copy", "-c:a", "aac",
        "-f", "mpegts", "pipe:1",
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.read(64 * 1024)
    ttfb = time.perf_counter() - began
    size = len(first)
    while chunk := proc.stdout.read(64 * 1024):
        size += len(chunk)
    proc.stdout.close()
    proc.wait()
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"ttfb_ms": ttfb * 1000, "wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "bytes": size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = make(Path(tmp), args.seconds)
        for name, path in files.items():
            runs = [remux(path) for _ in range(args.rounds)]
            results[name] = {
                k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]
            } | {"source_bytes": path.stat().st_size}
    print(f"media.ts remux of one {args.seconds} s 640x360 H.264 segment (median of {args.rounds})")
    print(
        f"{'container':<16} {'TTFB ms':>8} {'wall ms':>8} {'CPU ms':>8} {'MB in':>7} {'MB out':>7}"
    )
    for name, r in results.items():
        print(
            f"{name:<16} {r['ttfb_ms']:>8} {r['wall_ms']:>8} {r['cpu_ms']:>8} "
            f"{r['source_bytes'] / 1e6:>7.1f} {r['bytes'] / 1e6:>7.1f}"
        )
    out = Path(__file__).parent / "results" / "media_remux.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"seconds": args.seconds, "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

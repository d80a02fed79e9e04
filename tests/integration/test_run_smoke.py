"""`camvault run` on embedded defaults, as a user starts it: a real subprocess, nothing
configured, embedded PostgreSQL + SeaweedFS, the demo camera; then Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import httpx
import psycopg
from botocore.config import Config

BUDGET_SECONDS = 150


def _reader(stream: object, q: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        q.put(line)


def test_run_on_embedded_defaults_archives_demo_segments(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMVAULT_", "AWS_"))}
    env["CAMVAULT_API_PORT"] = "0"  # a free port: the web UI is part of what a newcomer gets
    cmd = [sys.executable, "-m", "camvault", "run", "--demo-segment-seconds", "2"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    uploaded: list[str] = []
    deadline = time.monotonic() + BUDGET_SECONDS
    try:
        while len(uploaded) < 2 and time.monotonic() < deadline and proc.poll() is None:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            if "✓ uploaded" in line:
                uploaded.append(line.split("✓ uploaded ")[1].split(" ")[0])
        assert len(uploaded) >= 2, "".join(seen)

        # the catalog and the bucket agree, seen from outside the process
        state = json.loads((tmp_path / ".camvault" / "embedded.json").read_text())
        with psycopg.connect(state["database_url"]) as conn:
            keys = {
                r[0]
                for r in conn.execute("SELECT s3_key FROM recordings WHERE camera_id = 'demo-1'")
            }
        assert set(uploaded) <= keys
        s3 = boto3.client(
            "s3",
            endpoint_url=state["s3_endpoint_url"],
            aws_access_key_id=state["s3_access_key"],
            aws_secret_access_key=state["s3_secret_key"],
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        head = s3.head_object(Bucket="camvault", Key=uploaded[0])
        assert head["ServerSideEncryption"] == "AES256"
        assert head["Metadata"]["camera-id"] == "demo-1"
        # the one-time admin password printed on the first run signs in, and the demo
        # camera's footage is on the timeline
        signin = re.search(r"sign in at (\S+)/ as admin with password (\S+) ", "".join(seen))
        assert signin, "".join(seen)
        with httpx.Client(base_url=signin[1], timeout=30) as web:
            resp = web.post(
                "/api/session",
                json={"username": "admin", "password": signin[2]},
                headers={"X-Camvault-CSRF": "1"},
            )
            assert resp.status_code == 200, resp.text
            timeline = web.get("/api/cameras/demo-1/timeline")
            assert timeline.status_code == 200 and timeline.json()["spans"], timeline.text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    reader.join(timeout=10)  # the process has exited: the reader reaches EOF
    while not lines.empty():
        seen.append(lines.get())
    assert proc.stdout is not None
    proc.stdout.close()
    out = "".join(seen)
    assert code == 0, out
    assert "stopped" in out
    # clean shutdown: nothing left behind in the spool, embedded state removed
    assert "pending 0" in out.strip().splitlines()[-2], out
    assert not (tmp_path / ".camvault" / "embedded.json").exists()

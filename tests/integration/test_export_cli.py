"""``camvault export`` against real servers: the same job path as the API, a file out."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from camvault.acl import Permission
from camvault.cli import main
from tests.integration.access_env import T0, add_cameras, service_access
from tests.integration.export_env import FRAME, frame_times, upload_footage

SEC = timedelta(seconds=1)


@pytest.fixture
def config(
    tmp_path: Path, db_url: str, seaweed: Any, bucket: str, aws_env: None, s3: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:  # fmt: skip
    for var in ("CAMVAULT_DATABASE_URL", "CAMVAULT_S3_BUCKET", "CAMVAULT_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    add_cameras(db_url, "gate")
    upload_footage(s3, bucket, db_url, "gate", [T0, T0 + 20 * SEC], 20, tmp_path)
    with service_access(db_url) as acc:
        acc.add_user("viewer")
        acc.add_grant(camera_id="gate", user="viewer", permission=Permission.VIEW)
    path = tmp_path / "camvault.toml"
    path.write_text(f"""
data_dir = "{tmp_path / "data"}"
[database]
url = "{db_url}"
[s3]
bucket = "{bucket}"
endpoint_url = "{seaweed.endpoint_url}"
prefix = "site-a"
addressing_style = "path"
[spool]
dir = "{tmp_path / "spool"}"
""")
    return path


def test_cli_export_writes_the_clip(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    out = tmp_path / "clip.mp4"
    start, end = T0 + 12 * SEC, T0 + 33 * SEC
    code = main(
        ["-c", str(config), "export", "--camera", "gate", "--start", start.isoformat(),
         "--end", end.isoformat(), "-o", str(out), "--json"]
    )  # fmt: skip
    stdout, err = capsys.readouterr()
    assert code == 0, err
    body = json.loads(stdout)
    assert body["state"] == "done" and body["cut"] == "keyframe_at_or_before"
    assert body["assembly"] == "splice"  # faststart H.264, no audio: no ffmpeg cut it
    assert body["s3_key"].startswith("site-a/exports/gate/")
    data = out.read_bytes()
    assert hashlib.sha256(data).hexdigest() == body["sha256"]
    got = frame_times(data, start, tmp_path)
    assert got == [T0 + i * FRAME for i in range(120, 330)]
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT state, requester_name FROM exports").fetchone()
    assert row == ("done", "operator")

    # on behalf of a view-only user: refused, exit 2, nothing queued
    code = main(
        ["-c", str(config), "export", "--camera", "gate", "--start", start.isoformat(),
         "--end", end.isoformat(), "-o", str(tmp_path / "no.mp4"), "--user", "viewer"]
    )  # fmt: skip
    assert code == 2 and "export permission" in capsys.readouterr().err
    assert not (tmp_path / "no.mp4").exists()


def test_cli_export_loads_neither_pyav_pydantic_nor_the_api(config: Path, tmp_path: Path) -> None:
    """The whole job route in a fresh process (probes, ffmpeg, upload, output file) without
    PyAV (its libav libraries are ~22 MB resident: the keyframes are probed by the ffmpeg
    binary), pydantic (the config is validated in a child process: export.standalone) or
    the web stack: what keeps the command's memory small (bench/export_clip.py)."""
    out = tmp_path / "sub.mp4"
    argv = ["-c", str(config), "export", "--camera", "gate", "--start",
            (T0 + 12 * SEC).isoformat(), "--end", (T0 + 33 * SEC).isoformat(), "-o", str(out),
            "--json"]  # fmt: skip
    script = (
        "import json, sys\nfrom camvault.cli import main\n"
        f"code = main({argv!r})\n"
        "print('@@' + json.dumps([code, sorted({m.split('.')[0] for m in sys.modules})]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@")), None)
    assert line is not None, proc.stdout + proc.stderr
    code, modules = json.loads(line[2:])
    assert code == 0 and out.stat().st_size > 0, proc.stderr
    heavy = {"av", "pydantic", "pydantic_settings", "fastapi", "starlette", "uvicorn"}
    heavy &= set(modules)
    assert not heavy, sorted(heavy)


def test_cli_export_config_error_is_reported_as_ever(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The child cannot validate a broken config: the command validates in-process and
    says what every command says (exit 2), nothing is exported."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[database]\npool_max_size = 0\n")
    code = main(
        ["-c", str(bad), "export", "--camera", "gate", "--start", T0.isoformat(),
         "--end", (T0 + SEC).isoformat(), "-o", str(tmp_path / "x.mp4")]
    )  # fmt: skip
    assert code == 2 and "config error" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_cli_export_in_process_when_the_child_cannot_answer(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """No answer from the config child (``resolve`` → None): the settings are validated
    here and the same job runs from them."""
    from camvault.export import standalone

    monkeypatch.setattr(standalone, "resolve", lambda config: None)
    out = tmp_path / "inproc.mp4"
    code = main(
        ["-c", str(config), "export", "--camera", "gate", "--start",
         (T0 + 12 * SEC).isoformat(), "--end", (T0 + 33 * SEC).isoformat(), "-o", str(out),
         "--json"]
    )  # fmt: skip
    stdout, err = capsys.readouterr()
    assert code == 0, err
    body = json.loads(stdout)
    assert body["state"] == "done" and body["s3_key"].startswith("site-a/exports/gate/")
    assert hashlib.sha256(out.read_bytes()).hexdigest() == body["sha256"]

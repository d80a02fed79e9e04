"""Fixtures shared by the integration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def config(
    tmp_path: Path,
    db_url: str,
    seaweed: Any,
    bucket: str,
    aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    for var in (
        "CAMVAULT_DATABASE_URL",
        "CAMVAULT_S3_BUCKET",
        "CAMVAULT_S3_ENDPOINT_URL",
        "CAMVAULT_SPOOL_DIR",
        "CAMVAULT_SEGMENT_SECONDS",
        "CAMVAULT_CONFIG",
    ):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "camvault.toml"
    path.write_text(f"""
[database]
url = "{db_url}"
[s3]
bucket = "{bucket}"
region = "us-east-1"
endpoint_url = "{seaweed.endpoint_url}"
prefix = "site-a"
addressing_style = "path"
[spool]
dir = "{tmp_path / "spool"}"
[recording]
segment_seconds = 300
[upload]
backoff_base_seconds = 0.05
backoff_max_seconds = 0.1

[[cameras]]
id = "lobby-1"
name = "Lobby entrance"
url = "rtsp://user:secret@10.0.0.21:554/stream1"
segment_seconds = 300
""")
    return path

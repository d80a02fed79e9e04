from __future__ import annotations

from pathlib import Path

import pytest

from camvault.config import load_settings
from camvault.errors import ConfigError

DESIGN_EXAMPLE = """
[database]
url = "postgresql://camvault@db.example:5432/camvault"
[s3]
bucket = "acme-cctv"
region = "eu-west-1"
endpoint_url = ""            # empty = AWS; else any S3-compatible endpoint
prefix = ""                  # key prefix inside the bucket
[spool]
dir = "/var/lib/camvault/spool"
[recording]
segment_seconds = 300
[[cameras]]
id = "lobby-1"
name = "Lobby entrance"
url = "rtsp://user:secret@10.0.0.21:554/stream1"
segment_seconds = 300
[[cameras]]
id = "dock-2"
name = "Loading dock (drop-in)"
"""


def test_design_brief_example_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "camvault.toml"
    f.write_text(DESIGN_EXAMPLE)
    s = load_settings(f, environ={})
    assert s.database.url.startswith("postgresql://camvault@db.example")
    assert (s.s3.bucket, s.s3.region, s.s3.endpoint_url, s.s3.prefix) == (
        "acme-cctv",
        "eu-west-1",
        "",
        "",
    )
    assert s.spool.dir == Path("/var/lib/camvault/spool")
    assert [c.id for c in s.cameras] == ["lobby-1", "dock-2"]
    assert s.cameras[1].url is None
    assert s.segment_seconds_for("lobby-1") == 300


def test_environment_overrides_file(tmp_path: Path) -> None:
    f = tmp_path / "camvault.toml"
    f.write_text(DESIGN_EXAMPLE)
    s = load_settings(
        f,
        environ={
            "CAMVAULT_DATABASE_URL": "postgresql://other/db",
            "CAMVAULT_S3_BUCKET": "b2",
            "CAMVAULT_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "CAMVAULT_SPOOL_DIR": "/tmp/sp",
            "CAMVAULT_SEGMENT_SECONDS": "60",
            "CAMVAULT_UPLOAD_MAX_RETRIES": "5",
            "CAMVAULT_TEST_DATABASE_URL": "ignored",
            "UNRELATED": "x",
        },
    )
    assert s.database.url == "postgresql://other/db"
    assert s.s3.bucket == "b2" and s.s3.endpoint_url == "http://127.0.0.1:9000"
    assert s.spool.dir == Path("/tmp/sp")
    assert s.recording.segment_seconds == 60
    assert s.segment_seconds_for("dock-2") == 60 and s.segment_seconds_for("lobby-1") == 300
    assert s.upload.max_retries == 5


def test_defaults_without_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(None, environ={})
    assert s.recording.segment_seconds == 300
    assert s.s3.endpoint_url is None  # not configured → embedded in `camvault run`
    assert s.database.url == ""
    assert (s.upload.max_retries, s.upload.backoff_base_seconds, s.upload.backoff_max_seconds) == (
        3,
        1.0,
        30.0,
    )


@pytest.mark.parametrize(
    ("text", "env", "needle"),
    [
        ("[upload]\nconcurency = 4\n", {}, "upload.concurency"),
        ("[upload]\nconcurrency = 0\n", {}, "upload.concurrency"),
        ("", {"CAMVAULT_UPLOAD_CONCURRENCY": "many"}, "upload.concurrency"),
        ("[[cameras]]\nid = '../x'\n", {}, "cameras.0.id"),
        ("[[cameras]]\nid = 'a'\n[[cameras]]\nid = 'a'\n", {}, "listed twice"),
        ("[lifecycle]\ntransition_after_days = 30\nexpire_after_days = 10\n", {}, "expire_after"),
        ("[s3\nbucket=1", {}, "cannot read config"),
    ],
)
def test_invalid_settings_fail_with_one_clear_line(
    tmp_path: Path, text: str, env: dict[str, str], needle: str
) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_settings(f, environ=env)
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value).strip() or "cannot read" in str(exc.value)


def test_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_prefix_is_normalized(tmp_path: Path) -> None:
    f = tmp_path / "x.toml"
    f.write_text("[s3]\nprefix = '/site-a'\n")
    assert load_settings(f, environ={}).s3.prefix == "site-a/"

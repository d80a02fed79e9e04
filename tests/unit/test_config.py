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


def test_layers_merge_key_by_key_init_over_env_over_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[s3]\nbucket = 'from-file'\nregion = 'eu-west-1'\n[upload]\nmax_retries = 7\n")
    env = {"CAMVAULT_S3_BUCKET": "from-env", "CAMVAULT_UPLOAD_MAX_RETRIES": "5"}
    s = load_settings(f, environ=env, overrides={"upload": {"max_retries": 9}})
    # env beats the file for its key only; the file's other key in that table survives
    assert (s.s3.bucket, s.s3.region) == ("from-env", "eu-west-1")
    assert s.upload.max_retries == 9  # keyword overrides beat the environment
    assert s.upload.concurrency == 4  # untouched keys keep their defaults


def test_nested_delimiter_splits_once_so_keys_keep_underscores(tmp_path: Path) -> None:
    env = {
        "CAMVAULT_S3_MULTIPART_THRESHOLD_MB": "128",
        "CAMVAULT_API_SIGNIN_MAX_FAILURES_PER_ADDR": "3",
        "CAMVAULT_LIFECYCLE_EXPORT_EXPIRE_DAYS": "2",
        "CAMVAULT_DATA_DIR": "/srv/cv",
        "CAMVAULT_FLEET_MAX_CAMERAS": "4",
    }
    f = tmp_path / "c.toml"
    f.write_text("")
    s = load_settings(f, environ=env)
    assert s.s3.multipart_threshold_mb == 128
    assert s.api.signin_max_failures_per_addr == 3
    assert s.lifecycle.export_expire_days == 2
    assert s.data_dir == Path("/srv/cv")
    assert s.fleet.max_cameras == 4


def test_short_env_names_and_the_long_form_wins(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[node]\nid = 'node-a'\nlease_seconds = 30\n")
    s = load_settings(
        f,
        environ={
            "CAMVAULT_SEGMENT_SECONDS": "60",
            "CAMVAULT_NODE_MAX_CAMERAS": "2",
            "CAMVAULT_NODE_STOP_MARGIN_SECONDS": "4",
            "CAMVAULT_NODE": "node-b",
        },
    )
    assert s.recording.segment_seconds == 60
    # CAMVAULT_NODE replaces the id of the [node] table, not the table's other keys
    assert (s.node, s.fleet.lease_seconds, s.fleet.max_cameras) == ("node-b", 30.0, 2)
    assert s.fleet.stop_margin_seconds == 4.0
    both = {"CAMVAULT_SEGMENT_SECONDS": "60", "CAMVAULT_RECORDING_SEGMENT_SECONDS": "90"}
    assert load_settings(f, environ=both).recording.segment_seconds == 90


def test_toml_source_and_environment_named_in_errors(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[api]\nport = 8080\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(f, environ={"CAMVAULT_API_PORT": "99999"})
    assert str(exc.value).startswith(f"invalid setting api.port in {f} + CAMVAULT_* environment: ")
    f.write_text("[api]\nport = -1\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(f, environ={"UNRELATED": "1"})
    assert str(exc.value).startswith(f"invalid setting api.port in {f}: ")
    f.write_text("dta_dir = '/x'\n")  # a top-level typo is refused too
    with pytest.raises(ConfigError, match="dta_dir"):
        load_settings(f, environ={})


def test_env_unknown_key_in_a_section_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as exc:
        load_settings(None, environ={"CAMVAULT_UPLOAD_CONCURENCY": "2"})
    assert "upload.concurency in defaults + CAMVAULT_* environment" in str(exc.value)


def test_settings_built_directly_read_neither_environment_nor_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from camvault.config import Settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "camvault.toml").write_text("[s3]\nbucket = 'file'\n")
    monkeypatch.setenv("CAMVAULT_S3_REGION", "env")
    s = Settings(s3={"bucket": "kw"})  # type: ignore[arg-type]
    assert (s.s3.bucket, s.s3.region) == ("kw", "us-east-1")
    assert Settings.model_validate({}).s3.bucket == "camvault"
    assert load_settings().s3.region == "env"  # while load_settings reads both
    assert load_settings().s3.bucket == "file"


def test_env_values_are_single_values_never_json_or_whole_sections(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[[cameras]]\nid = 'a'\n")
    # not setting names: a section as JSON, the camera list (file only), lower-case names
    ignored = {
        "CAMVAULT_S3": '{"bucket": "x"}',
        "CAMVAULT_UPLOAD": "not json",
        "CAMVAULT_CAMERAS": '[{"id": "b"}]',
        "camvault_s3_bucket": "lower",
    }
    s = load_settings(f, environ=ignored)
    assert (s.s3.bucket, [c.id for c in s.cameras]) == ("camvault", ["a"])
    with pytest.raises(ConfigError) as exc:
        load_settings(f, environ={"CAMVAULT_LIFECYCLE_CAMERAS": '{"a": {"expire_after_days": 9}}'})
    assert "invalid setting lifecycle.cameras in" in str(exc.value)

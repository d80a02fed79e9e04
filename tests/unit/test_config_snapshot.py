"""`camvault ingest`'s settings snapshot: reused only for the same config, environment and
code; an invalid config is never snapshotted; no cache directory is no problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import camvault.config
from camvault.config_snapshot import cache_dir, load_ingest_config
from camvault.errors import ConfigError

CONFIG = "[s3]\nprefix = '/site'\n[spool]\ndir = '/srv/spool'\n[[cameras]]\nid = 'dock-2'\n"


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every full validation (``load_settings``) the snapshot falls back to."""
    calls: list[Any] = []
    real = camvault.config.load_settings

    def counting(*args: Any, **kw: Any) -> Any:
        calls.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(camvault.config, "load_settings", counting)
    return calls


def test_second_load_of_the_same_config_skips_validation(
    tmp_path: Path, validations: list[Any]
) -> None:
    f = tmp_path / "c.toml"
    f.write_text(CONFIG)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "CAMVAULT_SPOOL_DIR": "/srv/other"}
    first = load_ingest_config(f, env)
    assert len(validations) == 1
    assert first.spool_dir == Path("/srv/other") and first.prefix == "site/"
    assert first.camera_ids == frozenset({"dock-2"})
    assert first.quarantine_dir == Path("/srv/other/quarantine")
    assert load_ingest_config(f, env) == first
    assert len(validations) == 1  # read back, not validated again
    assert len(list((tmp_path / "cache" / "camvault" / "settings").glob("*.json"))) == 1


def test_a_changed_file_or_environment_is_validated_again(
    tmp_path: Path, validations: list[Any]
) -> None:
    f = tmp_path / "c.toml"
    f.write_text(CONFIG)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    load_ingest_config(f, env)
    changed = load_ingest_config(f, {**env, "CAMVAULT_S3_PREFIX": "x"})
    assert changed.prefix == "x/" and len(validations) == 2
    f.write_text(CONFIG + "[upload]\nconcurency = 2\n")  # now invalid: fails every time
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"upload\.concurency"):
            load_ingest_config(f, env)
    assert len(validations) == 4


def test_damaged_snapshot_and_no_cache_directory(tmp_path: Path, validations: list[Any]) -> None:
    f = tmp_path / "c.toml"
    f.write_text(CONFIG)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    load_ingest_config(f, env)
    directory = cache_dir(env)
    assert directory is not None
    for snap in directory.glob("*.json"):
        snap.write_text("{not json")
    assert load_ingest_config(f, env).camera_ids == frozenset({"dock-2"})
    assert len(validations) == 2
    assert cache_dir({}) is None
    assert load_ingest_config(f, {}).prefix == "site/"  # no HOME: validated every time
    assert load_ingest_config(f, {}).prefix == "site/"
    assert len(validations) == 4

"""Id patterns match the whole text: `$` also matches before a trailing newline, so
"lobby-1\\n" used to pass and reach S3 keys and metadata headers (issue 12, weakness 11)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

import camvault
from camvault.api import params
from camvault.api.params import ApiError
from camvault.config import load_settings
from camvault.errors import ConfigError, InputError
from camvault.keys import object_key, parse_key, validate_camera_id

T = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
ENDINGS = ["\n", "\r\n", "\n\n", " ", "\x00"]


@pytest.mark.parametrize("end", ENDINGS)
def test_camera_ids_with_a_trailing_character_are_refused(end: str) -> None:
    assert validate_camera_id("lobby-1") == "lobby-1"
    with pytest.raises(InputError):
        validate_camera_id("lobby-1" + end)
    with pytest.raises(InputError):
        object_key("", "lobby-1" + end, T, "mp4")
    with pytest.raises(ApiError) as info:
        params.camera_id("lobby-1" + end)
    assert info.value.status == 400 and info.value.field == "camera_id"
    with pytest.raises(ApiError):
        params.name("alice" + end)


def test_keys_parse_only_whole_keys() -> None:
    key = object_key("site/", "lobby-1", T, "mp4")
    assert parse_key("site/", key) == ("lobby-1", T, "mp4")
    for bad in (key + "\n", key + "\n.mp4", "\n" + key):
        assert parse_key("site/", bad) is None
    # \d is ASCII only: Arabic-Indic digits in the stamp are not a time
    arabic = "".join(chr(0x660 + int(d)) for d in "20261120")  # ARABIC-INDIC DIGITs
    odd = key.replace("20261120T080000", f"{arabic}T080000")
    assert parse_key("site/", odd) is None


def _load(tmp_path: Path, toml: str) -> str:
    cfg = tmp_path / "camvault.toml"
    cfg.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    return str(info.value)


def test_config_camera_id_with_newline_is_one_line_naming_the_key(tmp_path: Path) -> None:
    msg = _load(tmp_path, '[[cameras]]\nid = "lobby-1\\n"\n')
    assert "\n" not in msg and "cameras.0.id" in msg and "'lobby-1\\n'" in msg
    msg = _load(tmp_path, '[lifecycle.cameras."lobby-1\\n"]\nexpire_after_days = 10\n')
    assert "\n" not in msg and "lifecycle" in msg and "'lobby-1\\n'" in msg
    msg = _load(tmp_path, '[api]\ndatabase_role = "camvault_api\\n"\n')
    assert "\n" not in msg and "api.database_role" in msg
    ok = tmp_path / "ok.toml"
    ok.write_text('[[cameras]]\nid = "lobby-1"\n', encoding="utf-8")
    assert load_settings(ok, environ={}).cameras[0].id == "lobby-1"


def test_no_module_pattern_is_anchored_with_dollar() -> None:
    """Every compiled pattern in camvault: a `$` anchor (without MULTILINE, where it is
    meant per line) is a trailing-newline hole — use \\Z and fullmatch."""
    offenders = []
    for info in pkgutil.walk_packages(camvault.__path__, "camvault."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if not isinstance(value, re.Pattern) or value.flags & re.MULTILINE:
                continue
            pattern = value.pattern if isinstance(value.pattern, str) else value.pattern.decode()
            if re.search(r"(?<!\\)\$", pattern):
                offenders.append(f"{info.name}.{attr}: {pattern!r}")
    assert offenders == []

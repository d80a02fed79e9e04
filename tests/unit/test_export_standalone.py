"""``camvault export``'s configuration as plain values: what the child process validates
with pydantic round-trips through JSON to the same values the in-process path builds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from camvault.config import load_settings
from camvault.export.standalone import ExportConfig, resolve


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "camvault.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\nnode = "n1"\n'
        '[database]\nurl = "postgresql://u@127.0.0.1:9/db"\npool_max_size = 3\n'
        '[s3]\nbucket = "b"\nendpoint_url = "http://127.0.0.1:9"\nprefix = "site"\n'
        'addressing_style = "path"\ntransfer_concurrency = 4\n'
        "[api]\nmax_export_minutes = 30\nexport_fetch_parallel = 2\n"
    )
    return path


def test_the_child_answers_what_the_settings_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in [v for v in os.environ if v.startswith("CAMVAULT_")]:
        monkeypatch.delenv(var)
    path = _config(tmp_path)
    here = ExportConfig.from_settings(load_settings(path))
    assert ExportConfig.from_json(here.to_json()) == here
    child = resolve(str(path))
    assert child == here
    assert child.s3.prefix == "site/" and child.max_export_minutes == 30
    assert child.feed is not None and child.feed.parallel == 2


def test_a_config_the_child_cannot_validate_is_none(tmp_path: Path) -> None:
    assert resolve(str(tmp_path / "missing.toml")) is None

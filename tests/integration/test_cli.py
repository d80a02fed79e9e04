"""The operator's CLI against real servers, driven through ``camvault.cli.main``."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from camvault.cli import main
from tests.media import make_h264, make_random_bytes


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_full_operator_flow(
    config: Path, tmp_path: Path, s3: Any, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    c = str(config)
    code, out, _ = run(capsys, "-c", c, "db", "migrate")
    assert code == 0 and "up to date" in out  # template is migrated; re-run is a no-op

    assert run(capsys, "-c", c, "cameras", "add", "gate-3", "--name", "Back gate")[0] == 0
    code, out, _ = run(capsys, "-c", c, "cameras", "list", "--json")
    assert code == 0 and [cam["id"] for cam in json.loads(out)] == ["gate-3"]

    good = make_h264(tmp_path / "gate-3_20261120T080000Z.mp4", seconds=2.0)
    bad = make_random_bytes(tmp_path / "junk.mp4", 10_000)
    code, out, _ = run(
        capsys, "-c", c, "ingest", "--camera", "gate-3", "--json", str(good), str(bad)
    )
    assert code == 1  # partial: one file quarantined
    results = {Path(r["file"]).name: r for r in json.loads(out)}
    assert results[good.name]["ok"] and results[good.name]["s3_key"] == (
        "site-a/gate-3/2026/11/20/gate-3_20261120T080000Z.mp4"
    )
    assert not results["junk.mp4"]["ok"]
    assert Path(results["junk.mp4"]["quarantined_to"]).exists()

    code, out, _ = run(capsys, "-c", c, "status", "--json")
    status = json.loads(out)
    assert status["spool"]["by_state"]["queued"] == 1 and status["spool"]["quarantined"] == 1

    code, out, err = run(capsys, "-c", c, "upload", "--once", "--json")
    assert code == 0, err
    assert json.loads(out)["committed"] == 1
    head = s3.head_object(Bucket=bucket, Key=results[good.name]["s3_key"])
    assert head["ServerSideEncryption"] == "AES256"

    code, out, _ = run(
        capsys,
        "-c",
        c,
        "recordings",
        "list",
        "--camera",
        "gate-3",
        "--start",
        "2026-11-20T07:59:59Z",
        "--end",
        "2026-11-20T08:00:01Z",
        "--json",
    )
    rows = json.loads(out)
    assert code == 0 and len(rows) == 1 and rows[0]["s3_key"].endswith("080000Z.mp4")
    code, out, _ = run(
        capsys,
        "-c",
        c,
        "recordings",
        "list",
        "--camera",
        "gate-3",
        "--start",
        "2026-11-20T07:00:00Z",
        "--end",
        "2026-11-20T08:00:00Z",
    )
    assert code == 0 and "0 recording(s)" in out  # half-open: ends where the segment starts

    code, out, _ = run(capsys, "-c", c, "status")
    assert "gate-3" in out and "pending: 0" in out


def test_configured_cameras_are_registered(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # lobby-1 comes from the config file: ingest accepts it before anything registered it
    f = make_h264(tmp_path / "x.mp4")
    code, out, err = run(
        capsys,
        "-c",
        str(config),
        "ingest",
        "--camera",
        "lobby-1",
        "--start",
        "2026-11-20T08:00:00Z",
        str(f),
    )
    assert code == 0, err
    assert "spooled" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["recordings", "list", "--camera", "lobby-1", "--start", "yesterday"],
            "not an ISO 8601 time",
        ),
        (
            ["recordings", "list", "--camera", "lobby-1", "--start", "2026-11-20T08:00:00"],
            "no time zone",
        ),
    ],
)
def test_malformed_times_are_usage_errors(
    config: Path, argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["-c", str(config), *argv])
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


def test_reversed_range_and_unknown_camera(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys,
        "-c",
        str(config),
        "recordings",
        "list",
        "--camera",
        "lobby-1",
        "--start",
        "2026-11-20T09:00:00Z",
        "--end",
        "2026-11-20T08:00:00Z",
    )
    assert code == 2 and "must be after --start" in err
    code, _, err = run(capsys, "-c", str(config), "recordings", "list", "--camera", "nope")
    assert code == 2 and "no camera 'nope'" in err
    code, _, err = run(capsys, "-c", str(config), "recordings", "list", "--camera", "../etc")
    assert code == 2 and "invalid camera id" in err


def test_bad_config_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAMVAULT_CONFIG", raising=False)
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[upload]\nconcurency = 4\n")
    code, _, err = run(capsys, "-c", str(cfg), "status")
    assert code == 2
    assert err.count("\n") == 1 and "upload.concurency" in err
    code, _, err = run(capsys, "-c", str(tmp_path / "missing.toml"), "status")
    assert code == 2 and "does not exist" in err


def test_unreachable_database_is_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAMVAULT_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("CAMVAULT_DATABASE_CONNECT_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("CAMVAULT_SPOOL_DIR", str(tmp_path / "spool"))
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    code, _, err = run(capsys, "-c", str(empty), "cameras", "list")
    assert code == 3 and "unavailable" in err


def test_drop_directory_is_watched(make_settings: Any, tmp_path: Path) -> None:
    from camvault.app import App
    from camvault.ingest import DropWatcher

    drop = tmp_path / "drop"
    drop.mkdir()
    settings = make_settings(cameras=[{"id": "lobby-1", "drop_dir": str(drop)}])
    with App.open(settings) as app:
        app.register_cameras()
        watcher = DropWatcher(app.ingestor(), {"lobby-1": drop}, settle_seconds=1.0)
        f = make_h264(drop / "lobby-1_20261120T080000Z.mp4")
        (drop / ".hidden.mp4").write_bytes(b"x")
        partial = drop / "writing.mp4.part"
        shutil.copy(f, partial)
        assert watcher.scan_once(now=100.0) == []  # first sight: not settled yet
        results = watcher.scan_once(now=101.5)
        assert [r.source.name for r in results] == [f.name] and results[0].ok
        assert results[0].segment and results[0].segment.start_time == datetime(
            2026, 11, 20, 8, 0, tzinfo=UTC
        )
        assert partial.exists() and (drop / ".hidden.mp4").exists()

"""`ingest` and `upload` end their process without the interpreter's teardown (``exit_now``)
— but only as the process's own command, with everything flushed and no other thread at
work, and with the exit code the command returned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import camvault.cli as cli


class Exited(Exception):
    pass


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise Exited

    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    return codes


def test_exit_now_ends_with_the_code(exits: list[int]) -> None:
    with pytest.raises(Exited):
        cli.exit_now(1)
    assert exits == [1]


def test_exit_now_waits_for_the_normal_exit_while_another_thread_works(
    exits: list[int],
) -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait)  # not a daemon: its work must finish
    worker.start()
    try:
        cli.exit_now(0)  # returns: the interpreter's own exit will join the thread
    finally:
        release.set()
        worker.join()
    assert exits == []


def test_main_called_with_arguments_returns(exits: list[int], tmp_path: Path) -> None:
    """Tests and embedding code call ``main(argv)``: it must return, never end the process."""
    config = _config(tmp_path)
    code = cli.main(["-c", str(config), "ingest", "--camera", "dock-2", str(tmp_path / "none")])
    assert code == cli.EXIT_INPUT and exits == []


def test_a_command_run_as_the_process_exits_with_its_code_and_full_output(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    bad = tmp_path / "dock-2_20261120T080000Z.mp4"
    bad.write_bytes(b"not a video" * 1000)
    proc = _camvault(config, "ingest", "--json", "--camera", "dock-2", str(bad))
    assert proc.returncode == cli.EXIT_PARTIAL, proc.stderr
    [result] = json.loads(proc.stdout)  # the whole document made it out before the exit
    assert result["ok"] is False and Path(result["quarantined_to"]).exists()
    assert "quarantined" in proc.stderr  # the log line too

    missing = _camvault(config, "ingest", "--camera", "dock-2", str(tmp_path / "none.mp4"))
    assert missing.returncode == cli.EXIT_INPUT and "no such file" in missing.stderr


def _camvault(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    # block-buffered stdout, as in production: unflushed output would be lost
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-m", "camvault", "-c", str(config), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "camvault.toml"
    # nothing listens on port 9: these commands must not need the catalog or S3
    config.write_text(
        f'data_dir = "{tmp_path}"\n[database]\nurl = "postgresql://nobody@127.0.0.1:9/none"\n'
        f'[s3]\nendpoint_url = "http://127.0.0.1:9"\n[spool]\ndir = "{tmp_path}/spool"\n'
        '[[cameras]]\nid = "dock-2"\n'
    )
    return config

"""`camvault ingest --upload`: files probed, uploaded and committed in one process.

The uploader drains the spool while the next files are still being probed; at the end
every good file is an object in S3 and a row in the catalog, bad ones are quarantined.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from camvault.cli import main
from tests.media import make_h264, make_random_bytes
from tests.recording import rows


@pytest.fixture
def config(
    tmp_path: Path, db_url: str, seaweed: Any, bucket: str, aws_env: None, monkeypatch: Any
) -> Path:
    for var in ("CAMVAULT_DATABASE_URL", "CAMVAULT_S3_BUCKET", "CAMVAULT_SPOOL_DIR"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "camvault.toml"
    path.write_text(
        f'[database]\nurl = "{db_url}"\n'
        f'[s3]\nbucket = "{bucket}"\nendpoint_url = "{seaweed.endpoint_url}"\n'
        'addressing_style = "path"\n'
        f'[spool]\ndir = "{tmp_path / "spool"}"\n'
        "[upload]\nbackoff_base_seconds = 0.05\nbackoff_max_seconds = 0.1\n"
        '[[cameras]]\nid = "dock-2"\n'
    )
    return path


def test_ingest_upload_commits_every_good_file(
    config: Path,
    tmp_path: Path,
    s3: Any,
    bucket: str,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["-c", str(config), "cameras", "add", "dock-2"]) == 0
    good = [make_h264(tmp_path / f"dock-2_20261120T08{m:02d}00Z.mp4") for m in range(0, 30, 5)]
    bad = make_random_bytes(tmp_path / "dock-2_20261120T090000Z.mp4", 5_000)
    capsys.readouterr()
    code = main(
        ["-c", str(config), "ingest", "--upload", "--camera", "dock-2", "--json"]
        + [str(p) for p in [*good, bad]]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # partial: the bad file is quarantined
    assert out["committed"] == len(good) and out["pending"] == 0
    assert [f["ok"] for f in out["files"]] == [True] * len(good) + [False]
    keys = sorted(f["s3_key"] for f in out["files"] if f["ok"])
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="dock-2/")["Contents"]
    assert sorted(o["Key"] for o in listed) == keys
    assert sorted(r["s3_key"] for r in rows(db_url, "SELECT s3_key FROM recordings")) == keys
    assert not any(p.exists() for p in good)  # moved into the spool, then removed
    assert Path(out["files"][-1]["quarantined_to"]).exists()


def test_ingest_upload_refuses_while_another_uploader_owns_the_spool(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from camvault.spool import Spool

    f = make_h264(tmp_path / "dock-2_20261120T080000Z.mp4")
    daemon = Spool(tmp_path / "spool")
    daemon.lock_for_upload()  # e.g. `camvault upload` running
    try:
        code = main(["-c", str(config), "ingest", "--upload", "--camera", "dock-2", str(f)])
    finally:
        daemon.close()
    assert code == 1
    assert "another camvault uploader" in capsys.readouterr().err
    assert f.exists()  # nothing was taken

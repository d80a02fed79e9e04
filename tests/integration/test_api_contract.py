"""The API contract: ``/openapi.json`` tells the truth. schemathesis (the ``st`` CLI)
drives every operation of a running ``camvault serve`` wiring (real PostgreSQL and
SeaweedFS) as an admin and as a plain user, with a bounded number of examples, and
checks: no 5xx, every response matches its documented schema, content type and status
code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from camvault.acl import Permission
from tests.integration.access_env import add_cameras, add_recordings, service_access
from tests.media import make_h264

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "response_schema_conformance",
        "content_type_conformance",
    )
)
MAX_EXAMPLES = 10


@pytest.fixture
def served(db_url: str, bucket: str, s3: Any, make_settings: Any, tmp_path: Path) -> Any:
    from camvault.api.server import start_api
    from camvault.app import App

    add_cameras(db_url, "lobby-1", "dock-2")
    recs = add_recordings(db_url, "lobby-1", 4, bucket=bucket)
    add_recordings(db_url, "dock-2", 2, bucket=bucket, storage_class="GLACIER")
    # one recording has real media behind it (playable, remuxable); the others' objects
    # are missing, which the API must answer as 404, not as a server error
    clip = make_h264(tmp_path / "clip.mp4", seconds=1.0)
    s3.put_object(
        Bucket=bucket, Key=recs[0].key, Body=clip.read_bytes(), ServerSideEncryption="AES256"
    )
    with psycopg.connect(db_url) as conn:
        # ids the generators like (1, 2, boundaries …) must not be our callers': deleting
        # user 1 or revoking token 1 would lock the run out
        for table in ("users", "api_tokens"):
            conn.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), 7340117093)", (table,))
    with service_access(db_url) as acc:
        acc.add_user("boss", is_admin=True)
        acc.add_user("viewer")
        acc.add_grant(camera_id="lobby-1", user="viewer", permission=Permission.EXPORT)
        tokens = {n: acc.create_token(n)[0] for n in ("boss", "viewer")}
    with App.open(make_settings()) as app:
        server, stop = start_api(app, host="127.0.0.1", port=0)
        try:
            yield server.url, tokens
        finally:
            stop()


# Operations that can lock the caller out (revoke its token, disable or delete its user;
# schemathesis learns real ids from responses): run after everything else.
LOCKOUT = (
    "DELETE /api/tokens/{token_id}",
    "PATCH /api/users/{user_id}",
    "DELETE /api/users/{user_id}",
)


def _st(url: str, token: str, report_dir: Path, *selection: str) -> str:
    st = Path(sys.executable).with_name("st")
    proc = subprocess.run(
        [
            str(st),
            "run",
            f"{url}/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",  # hypothesis' lambda-source parsing is not thread-safe on CPython 3.11
            "--seed",
            "20261128",
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "all",
            "--report",
            "junit",
            "--report-dir",
            str(report_dir),
            *selection,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=report_dir,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-20000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("who", ["boss", "viewer"])
def test_every_operation_keeps_the_documented_contract(
    served: Any, who: str, tmp_path: Path
) -> None:
    url, tokens = served
    spec = httpx.get(url + "/openapi.json").json()
    operations = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}
    assert set(LOCKOUT) <= operations
    main = _st(url, tokens[who], tmp_path, *[a for n in LOCKOUT for a in ("--exclude-name", n)])
    assert f"Tested: {len(operations) - len(LOCKOUT)}" in main, main[-5000:]
    # the caller kept its access throughout (else most of the run tested only 401s)
    assert "401 Unauthorized" not in main, main[-5000:]
    last = _st(url, tokens[who], tmp_path, *[a for n in LOCKOUT for a in ("--include-name", n)])
    assert f"Tested: {len(LOCKOUT)}" in last, last[-5000:]

"""Failed upload attempts as operators see them: `GET /api/upload-errors` (admins only,
also by row-level security) and `camvault status` (human and --json)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from camvault.catalog.attempts import AttemptCatalog, AttemptRecord
from camvault.catalog.connector import PsycopgConnector
from camvault.cli import main
from camvault.embedded import SeaweedFS
from tests.integration.access_env import add_cameras, api_client, bearer, service_access

NOW = datetime.now(UTC).replace(microsecond=0)


def _attempt(camera: str, seg: str, attempt: int, outcome: str, **kw: Any) -> AttemptRecord:
    return AttemptRecord(
        camera_id=camera,
        segment_id=seg,
        s3_key=f"{camera}/{seg}.mp4",
        round=kw.get("round", 1),
        attempt=attempt,
        error_class=kw.get("error_class", "network"),
        error_code=kw.get("error_code", "ConnectionClosedError"),
        message="S3 PUT failed: network",
        bytes_sent=kw.get("bytes_sent"),
        node="node-a",
        occurred_at=NOW - timedelta(minutes=10 - attempt),
        round_outcome=outcome,  # type: ignore[arg-type]
        round_ended_at=None if outcome == "pending" else NOW,
    )


def seed(db_url: str) -> None:
    add_cameras(db_url, "lobby-1", "dock-3")
    connector = PsycopgConnector(db_url, max_size=1)
    try:
        cat = AttemptCatalog(connector)
        # lobby-1: two cuts a retry recovered from; dock-3: a round that failed for good
        cat.upsert(_attempt("lobby-1", "s1", 1, "pending", bytes_sent=7 << 20))
        cat.upsert(_attempt("lobby-1", "s1", 2, "pending", bytes_sent=7 << 20))
        cat.upsert(_attempt("lobby-1", "s1", 1, "succeeded"))  # the round's outcome arrives
        cat.upsert(_attempt("lobby-1", "s1", 2, "succeeded"))
        cat.upsert(_attempt("lobby-1", "s1", 2, "pending"))  # a late replay never regresses
        cat.upsert(_attempt("dock-3", "s2", 3, "failed", error_class="s3:AccessDenied"))
    finally:
        connector.close()


@pytest.fixture
def env(db_url: str, bucket: str, seaweed: SeaweedFS) -> Any:
    seed(db_url)
    with service_access(db_url) as acc:
        acc.add_user("viewer")
        acc.add_user("boss", is_admin=True)
        acc.add_grant(camera_id="lobby-1", user="viewer")
        tokens = {n: acc.create_token(n)[0] for n in ("viewer", "boss")}
    with api_client(
        db_url,
        s3_endpoint=seaweed.endpoint_url,
        bucket=bucket,
        credentials=(seaweed.access_key, seaweed.secret_key),
    ) as (client, _):
        yield client, tokens


def test_upload_errors_endpoint_is_for_admins(env: Any) -> None:
    client, tokens = env
    boss, viewer = bearer(tokens["boss"]), bearer(tokens["viewer"])
    assert client.get("/api/upload-errors").status_code == 401
    r = client.get("/api/upload-errors", headers=viewer)
    assert r.status_code == 403 and set(r.json()) == {"detail", "field"}

    body = client.get("/api/upload-errors", headers=boss).json()
    assert [(i["camera_id"], i["attempt"], i["round_outcome"]) for i in body["items"]] == [
        ("dock-3", 3, "failed"),
        ("lobby-1", 2, "succeeded"),
        ("lobby-1", 1, "succeeded"),
    ]
    assert body["items"][1]["bytes_sent"] == 7 << 20
    assert body["items"][1]["error_code"] == "ConnectionClosedError"
    summary = {c["camera_id"]: c for c in body["per_camera"]}
    assert (summary["lobby-1"]["failed_attempts"], summary["lobby-1"]["recovered_by_retry"]) == (
        2,
        2,
    )
    assert summary["lobby-1"]["failed_rounds"] == 0
    assert (summary["dock-3"]["failed_rounds"], summary["dock-3"]["last_error_class"]) == (
        1,
        "s3:AccessDenied",
    )

    one = client.get(
        "/api/upload-errors", headers=boss, params={"camera": "lobby-1", "limit": 1}
    ).json()
    assert [(i["camera_id"], i["attempt"]) for i in one["items"]] == [("lobby-1", 2)]
    assert [c["camera_id"] for c in one["per_camera"]] == ["lobby-1"]

    bad = client.get("/api/upload-errors", headers=boss, params={"camera": "../x"})
    assert bad.status_code == 400 and bad.json()["field"] == "camera_id"
    bad = client.get("/api/upload-errors", headers=boss, params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["field"] == "limit"
    assert "/api/upload-errors" in client.get("/openapi.json").json()["paths"]


def test_rls_shows_attempts_to_admins_only(env: Any, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        ids = dict(conn.execute("SELECT name, id FROM users").fetchall())
        for name, expected in (("viewer", 0), ("boss", 3)):
            with conn.transaction():
                conn.execute("SET LOCAL ROLE camvault_api")
                conn.execute("SELECT set_config('camvault.user_id', %s, true)", (str(ids[name]),))
                row = conn.execute("SELECT count(*) FROM upload_attempts").fetchone()
                assert row == (expected,), name
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("SET LOCAL ROLE camvault_api")
            conn.execute("DELETE FROM upload_attempts")


def test_status_shows_upload_errors_per_camera(
    config: Path,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed(db_url)
    assert main(["-c", str(config), "status"]) == 0
    out = capsys.readouterr().out
    assert "failed upload attempts, last 24 h (not yet in the catalog: 0)" in out
    assert "lobby-1" in out and "2 failed attempt(s), 2 recovered by a retry" in out
    assert "dock-3" in out and "1 round(s) failed" in out and "s3:AccessDenied" in out

    assert main(["-c", str(config), "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    per = {r["camera_id"]: r for r in data["upload_errors"]["per_camera"]}
    assert per["lobby-1"]["failed_attempts"] == 2 and per["dock-3"]["failed_rounds"] == 1
    assert len(data["upload_errors"]["recent"]) == 3
    assert data["spool"]["unflushed_attempts"] == 0

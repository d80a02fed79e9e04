"""Every change commits with its audit row (issue 12, weakness 9).

* Admin API changes: when the audit row cannot be written, the change is not committed.
* CLI users/groups/grants/tokens actions are audited with the OS user as actor.
* A Glacier restore is on record (client address, user agent) before S3 is asked, and
  its outcome — accepted or failed — after.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from camvault.acl import Permission
from camvault.api import ApiServices, create_app
from camvault.api.server import ApiServer
from camvault.catalog.access import AccessCatalog, RoleConnector
from camvault.catalog.connector import PsycopgConnector
from camvault.catalog.lifecycle_catalog import LifecycleCatalog
from camvault.cli import main as cli_main
from camvault.cli import os_actor
from camvault.config import ApiSettings, S3Settings
from camvault.embedded import SeaweedFS
from camvault.errors import StorageUnavailable
from camvault.glacier import ObjectState
from camvault.restore import RestoreService
from camvault.storage import S3ObjectStore, make_client
from tests.integration.access_env import (
    add_cameras,
    add_recordings,
    api_client,
    bearer,
    service_access,
)
from tests.support.config import write_cli_config

# A full disk at the moment the audit row is written (SQLSTATE 53100: class 53, so the
# API answers 503): installed as a trigger by the superuser, removed by drop_audit_failure.
_FAIL_AUDIT = """
CREATE FUNCTION test_fail_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'no space left for the audit log' USING ERRCODE = '53100';
END $$;
CREATE TRIGGER test_fail_audit BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION test_fail_audit();
"""


def _audit_fails(db_url: str, on: bool) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        if on:
            conn.execute(_FAIL_AUDIT)
        else:
            conn.execute("DROP TRIGGER test_fail_audit ON audit_log")


def _rows(db_url: str, query: str) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def _audit(db_url: str) -> list[dict[str, Any]]:
    return _rows(
        db_url,
        "SELECT user_id, user_name, actor, action, camera_id, recording_id, client_addr,"
        " user_agent, detail FROM audit_log ORDER BY id",
    )


def test_admin_api_change_and_audit_commit_together(
    db_url: str, bucket: str, seaweed: SeaweedFS
) -> None:
    add_cameras(db_url, "lobby-1")
    with service_access(db_url) as acc:
        boss = acc.add_user("boss", is_admin=True)
        plain = acc.add_user("plain")
        token, _ = acc.create_token("boss")
    admin = bearer(token) | {"User-Agent": "audit-test/1.0"}
    with api_client(
        db_url,
        s3_endpoint=seaweed.endpoint_url,
        bucket=bucket,
        credentials=(seaweed.access_key, seaweed.secret_key),
    ) as (http, _):
        _audit_fails(db_url, True)
        attempts = [
            http.post("/api/users", json={"name": "ghost"}, headers=admin),
            http.post("/api/groups", json={"name": "ghosts"}, headers=admin),
            http.post("/api/grants", json={"user": "plain", "camera_id": "lobby-1"}, headers=admin),
            http.post("/api/tokens", json={"user": "plain"}, headers=admin),
            http.patch(f"/api/users/{plain.id}", json={"disabled": True}, headers=admin),
        ]
        assert [r.status_code for r in attempts] == [503] * len(attempts), [
            r.text for r in attempts
        ]
        # nothing changed without its audit row
        assert [u["name"] for u in _rows(db_url, "SELECT name FROM users ORDER BY id")] == [
            "boss",
            "plain",
        ]
        assert _rows(db_url, "SELECT id FROM groups") == []
        assert _rows(db_url, "SELECT id FROM grants") == []
        assert len(_rows(db_url, "SELECT id FROM api_tokens")) == 1
        assert _rows(db_url, "SELECT disabled FROM users WHERE name = 'plain'") == [
            {"disabled": False}
        ]

        _audit_fails(db_url, False)
        r = http.post("/api/users", json={"name": "ghost"}, headers=admin)
        assert r.status_code == 201, r.text
        r = http.post("/api/grants", json={"user": "plain", "camera_id": "lobby-1"}, headers=admin)
        assert r.status_code == 201, r.text
    rows = _audit(db_url)
    assert [r["action"] for r in rows] == ["user.add", "grant.add"]
    for row in rows:
        assert (row["user_id"], row["user_name"], row["actor"]) == (boss.id, "boss", "user:boss")
        assert row["client_addr"] == "127.0.0.1" and row["user_agent"] == "audit-test/1.0"
    assert rows[1]["camera_id"] == "lobby-1" and rows[1]["detail"]["user"] == "plain"


@pytest.fixture
def cli(make_settings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    s = make_settings()
    cfg = write_cli_config(s, tmp_path / "camvault.toml")

    def run(*argv: str) -> tuple[int, str]:
        code = cli_main(["--config", str(cfg), *argv])
        return code, capsys.readouterr().out

    return run


def test_cli_actions_are_audited_with_the_os_user(
    cli: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_cameras(db_url, "lobby-1")
    steps = [
        ("users", "add", "ops", "--admin"),
        ("users", "add", "guard"),
        ("users", "disable", "guard"),
        ("users", "enable", "guard"),
        ("groups", "add", "night"),
        ("groups", "add-member", "night", "guard"),
        ("groups", "remove-member", "night", "guard"),
        ("grants", "add", "--group", "night", "--camera", "lobby-1"),
        ("grants", "revoke", "1"),
    ]
    for argv in steps:
        assert cli(*argv)[0] == 0, argv
    code, out = cli("tokens", "create", "--user", "guard")
    assert code == 0
    token = out.strip().splitlines()[-1]
    token_id = _rows(db_url, "SELECT id FROM api_tokens")[0]["id"]
    assert cli("tokens", "revoke", str(token_id))[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert cli("users", "passwd", "guard")[0] == 0

    rows = _audit(db_url)
    assert [r["action"] for r in rows] == [
        "user.add",
        "user.add",
        "user.update",
        "user.update",
        "group.add",
        "group.add_member",
        "group.remove_member",
        "grant.add",
        "grant.revoke",
        "token.create",
        "token.revoke",
        "user.passwd",
    ]
    me = os_actor()
    assert me.startswith("os:") and len(me) > 3
    assert {(r["actor"], r["user_id"], r["client_addr"]) for r in rows} == {(me, None, None)}
    assert rows[0]["detail"] == {"user": "ops", "is_admin": True}
    assert rows[2]["detail"] == {"user": "guard", "disabled": True}
    assert rows[5]["detail"] == {"group": "night", "user": "guard"}
    assert rows[7]["camera_id"] == "lobby-1" and rows[7]["detail"]["group"] == "night"
    assert rows[9]["detail"] == {"token_id": token_id, "user": "guard"}
    assert token.startswith("cvt_") and token not in str(rows)
    assert rows[11]["detail"] == {"user": "guard"} and "horse" not in str(rows)

    # a CLI change whose audit row cannot be written is not made
    _audit_fails(db_url, True)
    code, _ = cli("users", "add", "ghost")
    assert code == 3
    assert _rows(db_url, "SELECT id FROM users WHERE name = 'ghost'") == []


class RecordingGlacier:
    """An archive in GLACIER whose restore call looks at the audit log first (what is on
    record at the moment S3 is asked) and then succeeds or fails as told."""

    bucket = "glacier"

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.fail = False
        self.seen_at_call: list[list[dict[str, Any]]] = []

    def head(self, key: str) -> ObjectState:
        from datetime import UTC, datetime

        return ObjectState(key, 10, datetime.now(UTC), "GLACIER", None)

    def restore(self, key: str, *, days: int, tier: str) -> str:
        self.seen_at_call.append(_audit(self.db_url))
        if self.fail:
            raise StorageUnavailable("S3 unreachable: connection reset")
        return "started"


@pytest.fixture
def restore_api(db_url: str, seaweed: SeaweedFS, bucket: str) -> Iterator[dict[str, Any]]:
    add_cameras(db_url, "vault")
    rec = add_recordings(db_url, "vault", 1, bucket="glacier")[0]
    with service_access(db_url) as acc:
        acc.add_user("exporter")
        acc.add_grant(camera_id="vault", user="exporter", permission=Permission.EXPORT)
        token, _ = acc.create_token("exporter")
    archive = RecordingGlacier(db_url)
    s3 = S3Settings(bucket=bucket, endpoint_url=seaweed.endpoint_url, addressing_style="path")
    connector = PsycopgConnector(db_url, max_size=4)
    as_api = RoleConnector(connector, "camvault_api")
    services = ApiServices(
        access=AccessCatalog(as_api),
        store=S3ObjectStore(
            make_client(s3, credentials=(seaweed.access_key, seaweed.secret_key)), s3
        ),
        settings=ApiSettings(),
        restores=RestoreService(LifecycleCatalog(as_api), archive),  # type: ignore[arg-type]
    )
    server = ApiServer(create_app(services), "127.0.0.1", 0)
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            yield {"http": http, "rec": rec, "archive": archive, "token": token}
    finally:
        server.stop()
        connector.close()


def test_restore_is_audited_with_client_before_s3_and_its_outcome_after(
    restore_api: dict[str, Any], db_url: str
) -> None:
    http, rec, archive = restore_api["http"], restore_api["rec"], restore_api["archive"]
    headers = bearer(restore_api["token"]) | {"User-Agent": "restore-client/2"}
    path = f"/api/recordings/{rec.id}/restore"

    r = http.post(path, json={"tier": "Bulk", "days": 2}, headers=headers)
    assert r.status_code == 202 and r.json()["status"] == "in_progress", r.text
    # when S3 was asked, the request and who made it were already committed
    [before] = archive.seen_at_call
    assert [a["action"] for a in before] == ["restore.request"]
    assert before[0]["client_addr"] == "127.0.0.1"
    assert before[0]["user_agent"] == "restore-client/2"
    assert before[0]["actor"] == "user:exporter"
    assert before[0]["detail"] == {"tier": "Bulk", "days": 2}
    rows = _audit(db_url)
    assert [a["action"] for a in rows] == ["restore.request", "restore.accepted"]
    assert rows[1]["detail"] == {"outcome": "started", "status": "in_progress"}
    assert {(a["recording_id"], a["client_addr"], a["user_agent"]) for a in rows} == {
        (rec.id, "127.0.0.1", "restore-client/2")
    }

    archive.fail = True
    r = http.post(path, headers=headers)
    assert r.status_code == 503, r.text
    rows = _audit(db_url)
    assert [a["action"] for a in rows][2:] == ["restore.request", "restore.failed"]
    assert rows[-1]["detail"] == {"error": "StorageUnavailable"}
    assert rows[-1]["user_agent"] == "restore-client/2"
    state = _rows(db_url, "SELECT status, detail FROM restores")
    assert state[0]["status"] == "failed" and "connection reset" in state[0]["detail"]
    r = http.get(path, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "archived", r.text

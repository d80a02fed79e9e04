"""Names and ids are never confused (issue 12, weakness 1).

Reproduction: `users add alice --admin` (id 1), `users add 1`, `tokens create --user 1`
used to print an admin token for alice. Names cannot be all digits (schema CHECK), every
lookup by name is by name only, and ids go through explicit `--user-id` / `user_id`.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from camvault.catalog.migrate import available, migrate
from camvault.cli import main as cli_main
from camvault.embedded import SeaweedFS
from camvault.errors import CamvaultError
from tests.integration.access_env import add_cameras, api_client, bearer, service_access
from tests.support.config import write_cli_config


@pytest.fixture
def cli(make_settings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    s = make_settings()
    cfg = write_cli_config(s, tmp_path / "camvault.toml")

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = cli_main(["--config", str(cfg), *argv])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _rows(db_url: str, query: str) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def test_all_digit_name_never_yields_another_users_token(cli: Any, db_url: str) -> None:
    add_cameras(db_url, "lobby-1")
    code, out, _ = cli("users", "add", "alice", "--admin", "--json")
    assert code == 0
    alice = json.loads(out)
    code, _, err = cli("users", "add", str(alice["id"]))
    assert code == 2 and "all digits" in err
    assert [u["name"] for u in _rows(db_url, "SELECT name FROM users")] == ["alice"]

    # the finding: a name that looks like alice's id must not reach alice
    code, out, err = cli("tokens", "create", "--user", str(alice["id"]))
    assert code != 0 and "alice" not in out and f"no user named '{alice['id']}'" in err
    assert _rows(db_url, "SELECT id FROM api_tokens") == []
    code, out, _ = cli("tokens", "create", "--user-id", str(alice["id"]))
    assert code == 0 and "for user alice" in out
    code, _, err = cli("tokens", "create", "--user", "alice", "--user-id", str(alice["id"]))
    assert code == 2 and "not allowed with" in err

    code, out, _ = cli("users", "add", "guard", "--json")
    guard = json.loads(out)
    code, _, err = cli("grants", "add", "--user", str(guard["id"]), "--camera", "lobby-1")
    assert code != 0 and "no user named" in err
    assert _rows(db_url, "SELECT id FROM grants") == []
    code, out, _ = cli(
        "grants", "add", "--user-id", str(guard["id"]), "--camera", "lobby-1", "--json"
    )
    assert code == 0 and json.loads(out)["user"] == "guard"

    code, _, err = cli("groups", "add", "42")
    assert code == 2 and "all digits" in err
    code, out, _ = cli("groups", "add", "night", "--json")
    night = json.loads(out)
    code, _, err = cli("groups", "add-member", "night", str(alice["id"]))
    assert code != 0 and "no user named" in err
    code, _, err = cli("groups", "add-member", str(night["id"]), "guard")
    assert code != 0 and "no group named" in err
    assert _rows(db_url, "SELECT user_id FROM group_members") == []
    assert cli("groups", "add-member", "night", "--user-id", str(guard["id"]))[0] == 0
    assert cli("groups", "add-member", "--group-id", str(night["id"]), "alice")[0] == 0
    members = _rows(db_url, "SELECT user_id FROM group_members ORDER BY user_id")
    assert [m["user_id"] for m in members] == sorted([alice["id"], guard["id"]])
    code, _, err = cli("groups", "remove-member", "night")
    assert code == 2 and "--user-id" in err
    code, _, _ = cli("groups", "remove-member", "--group-id", str(night["id"]), "alice")
    assert code == 0

    code, _, err = cli("users", "disable", str(alice["id"]))
    assert code != 0 and "no user named" in err
    assert _rows(db_url, "SELECT disabled FROM users WHERE name = 'alice'") == [{"disabled": False}]
    assert cli("users", "disable", "--id", str(guard["id"]))[0] == 0
    assert cli("users", "enable", "guard")[0] == 0
    code, _, err = cli("users", "disable")
    assert code == 2 and "--id" in err
    code, out, _ = cli("tokens", "list", "--user-id", str(alice["id"]), "--json")
    assert [t["user_name"] for t in json.loads(out)] == ["alice"]


def test_schema_refuses_all_digit_names(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        for table in ("users", "groups"):
            with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
                conn.execute(
                    sql.SQL("INSERT INTO {} (name) VALUES ('0123')").format(sql.Identifier(table))
                )
            with conn.transaction():  # digits inside a name are fine
                conn.execute(
                    sql.SQL("INSERT INTO {} (name) VALUES ('cam2-ops')").format(
                        sql.Identifier(table)
                    )
                )


def test_schema_refuses_ids_and_names_with_a_trailing_newline(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        for query in (
            "INSERT INTO cameras (id) VALUES (E'lobby-1\\n')",
            "INSERT INTO users (name) VALUES (E'alice\\n')",
            "INSERT INTO groups (name) VALUES (E'ops\\n')",
        ):
            with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
                conn.execute(query)  # type: ignore[arg-type]


def test_api_names_are_names_and_ids_are_ids(db_url: str, bucket: str, seaweed: SeaweedFS) -> None:
    add_cameras(db_url, "lobby-1")
    with service_access(db_url) as acc:
        boss = acc.add_user("boss", is_admin=True)
        plain = acc.add_user("plain")
        group = acc.add_group("crew")
        token, _ = acc.create_token("boss")
    admin = bearer(token)
    with api_client(
        db_url,
        s3_endpoint=seaweed.endpoint_url,
        bucket=bucket,
        credentials=(seaweed.access_key, seaweed.secret_key),
    ) as (http, _):
        # {"user": "<the admin's id>"} is a name: there is no such user, nothing granted
        r = http.post(
            "/api/grants", json={"user": str(boss.id), "camera_id": "lobby-1"}, headers=admin
        )
        assert r.status_code == 404 and r.json()["field"] == "user", r.text
        r = http.post(
            "/api/grants", json={"group": str(group.id), "camera_id": "lobby-1"}, headers=admin
        )
        assert r.status_code == 404 and r.json()["field"] == "group", r.text
        assert _rows(db_url, "SELECT id FROM grants") == []
        r = http.post(
            "/api/grants", json={"user_id": 999999, "camera_id": "lobby-1"}, headers=admin
        )
        assert r.status_code == 404 and r.json()["field"] == "user_id", r.text
        r = http.post(
            "/api/grants", json={"user_id": plain.id, "camera_id": "lobby-1"}, headers=admin
        )
        assert r.status_code == 201 and r.json()["user"] == "plain", r.text
        r = http.post(
            "/api/grants", json={"group_id": group.id, "camera_id": "lobby-1"}, headers=admin
        )
        assert r.status_code == 201 and r.json()["group"] == "crew", r.text
        r = http.post(
            "/api/grants",
            json={"user": "plain", "user_id": plain.id, "camera_id": "lobby-1"},
            headers=admin,
        )
        assert r.status_code == 400 and r.json()["field"] == "user", r.text

        r = http.post("/api/tokens", json={"user": str(boss.id)}, headers=admin)
        assert r.status_code == 404 and r.json()["field"] == "user", r.text
        r = http.post("/api/tokens", json={"user_id": plain.id}, headers=admin)
        assert r.status_code == 201 and r.json()["user"] == "plain", r.text
        r = http.post("/api/tokens", json={}, headers=admin)
        assert r.status_code == 400 and r.json()["field"] == "user", r.text

        members = f"/api/groups/{group.id}/members"
        r = http.post(members, json={"user": str(plain.id)}, headers=admin)
        assert r.status_code == 404 and r.json()["field"] == "user", r.text
        assert http.post(members, json={"user_id": plain.id}, headers=admin).status_code == 204
        assert http.post(members, json={"user": "boss"}, headers=admin).status_code == 204

        r = http.post("/api/users", json={"name": "31337"}, headers=admin)
        assert r.status_code == 400 and r.json()["field"] == "name", r.text
        r = http.post("/api/groups", json={"name": "7"}, headers=admin)
        assert r.status_code == 400 and r.json()["field"] == "name", r.text
        # trailing newline in an id path parameter: refused, naming the parameter
        r = http.get("/api/cameras/lobby-1%0A/recordings", headers=admin)
        assert r.status_code == 400 and r.json()["field"] == "camera_id", r.text
    members_now = _rows(db_url, "SELECT user_id FROM group_members ORDER BY user_id")
    assert [m["user_id"] for m in members_now] == sorted([boss.id, plain.id])


def _as_db(url: str, dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


def test_migration_stops_on_existing_all_digit_names(pg_admin_url: str) -> None:
    """An upgrade with an all-digit name fails with a message naming it (nothing is
    renamed behind the operator's back); after renaming, it applies."""
    dbname = f"camvault_dig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    url = _as_db(pg_admin_url, dbname)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE schema_migrations (version text PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for m in available():
                if m.version >= "0005":
                    break
                with conn.transaction():
                    conn.execute(m.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (%s, %s)", (m.version, m.name)
                    )
            conn.execute("INSERT INTO users (name, is_admin) VALUES ('alice', true), ('1', false)")
            conn.execute("INSERT INTO groups (name) VALUES ('2024')")
        with pytest.raises(CamvaultError) as info:
            migrate(url)
        msg = str(info.value)
        assert "all digits" in msg and "user '1'" in msg and "group '2024'" in msg
        assert "rename" in msg
        assert "\n" not in msg
        with psycopg.connect(url, autocommit=True) as conn:
            done = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
            assert ("0005",) not in done
            conn.execute("UPDATE users SET name = 'user-1' WHERE name = '1'")
            conn.execute("UPDATE groups SET name = 'team-2024' WHERE name = '2024'")
        assert "0005_access_hardening.sql" in migrate(url)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )

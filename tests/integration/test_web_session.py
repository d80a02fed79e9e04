"""Web sign-in on real PostgreSQL and SeaweedFS: argon2id passwords set by the CLI,
PostgreSQL-backed cookie sessions, CSRF, throttling, expiry, revocation, audit."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from camvault.cli import main as cli_main
from camvault.embedded import SeaweedFS
from camvault.sessions import COOKIE_NAME, ensure_initial_admin
from tests.integration.access_env import (
    add_cameras,
    add_recordings,
    api_client,
    bearer,
    service_access,
)
from tests.support.config import write_cli_config

CSRF = {"X-Camvault-CSRF": "1"}
PASSWORD = "correct horse battery"


@pytest.fixture
def env(db_url: str, bucket: str, make_settings: Any, tmp_path: Path, monkeypatch: Any) -> Any:
    add_cameras(db_url, "lobby-1", "vault-9")
    recs = add_recordings(db_url, "lobby-1", 3, bucket=bucket)
    with service_access(db_url) as acc:
        acc.add_user("guard")
        acc.add_grant(camera_id="lobby-1", user="guard")
        token = acc.create_token("guard")[0]
    s = make_settings()
    cfg = write_cli_config(s, tmp_path / "camvault.toml")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert cli_main(["--config", str(cfg), "users", "passwd", "guard"]) == 0
    return {"recs": recs, "token": token, "bucket": bucket, "cfg": cfg}


def _client(db_url: str, seaweed: SeaweedFS, bucket: str, **api: Any) -> Any:
    return api_client(
        db_url,
        s3_endpoint=seaweed.endpoint_url,
        bucket=bucket,
        credentials=(seaweed.access_key, seaweed.secret_key),
        api=api or None,
    )


def _sign_in(c: httpx.Client, user: str = "guard", password: str = PASSWORD) -> httpx.Response:
    return c.post("/api/session", json={"username": user, "password": password}, headers=CSRF)


def _rows(db_url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql, args).fetchall()


def test_password_is_argon2id_and_sign_in_sets_a_strict_httponly_cookie(
    env: Any, db_url: str, seaweed: SeaweedFS
) -> None:
    [(stored,)] = _rows(
        db_url, "SELECT p.hash FROM user_passwords p JOIN users u ON u.id = p.user_id"
    )
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    with _client(db_url, seaweed, env["bucket"], session_hours=2) as (c, _):
        resp = _sign_in(c)
        assert resp.status_code == 200, resp.text
        assert resp.json()["user"] == "guard" and resp.json()["via"] == "session"
        header = resp.headers["set-cookie"]
        assert "HttpOnly" in header and "SameSite=strict" in header and "Secure" not in header
        assert "Max-Age=7200" in header
        secret = c.cookies[COOKIE_NAME]
        # only the SHA-256 of the secret is stored
        [(sid, stored_hash, left)] = _rows(
            db_url, "SELECT id, secret_hash, expires_at - now() FROM web_sessions"
        )
        assert bytes(stored_hash) == hashlib.sha256(secret.encode()).digest()
        assert 7000 < left.total_seconds() <= 7200
        # the cookie authenticates reads, with row-level security as that user
        cams = c.get("/api/cameras")
        assert cams.status_code == 200 and [x["id"] for x in cams.json()] == ["lobby-1"]
        assert c.get("/api/session").json()["via"] == "session"
    [(action, detail)] = _rows(
        db_url, "SELECT action, detail FROM audit_log WHERE action <> 'user.passwd'"
    )
    assert action == "signin" and detail["session_id"] == sid


def test_cookie_is_secure_when_the_request_came_over_https(
    env: Any, db_url: str, seaweed: SeaweedFS
) -> None:
    with _client(db_url, seaweed, env["bucket"]) as (c, _):
        # a TLS-terminating proxy on loopback (uvicorn trusts its X-Forwarded-Proto)
        resp = c.post(
            "/api/session",
            json={"username": "guard", "password": PASSWORD},
            headers={**CSRF, "X-Forwarded-Proto": "https"},
        )
        assert resp.status_code == 200 and "Secure" in resp.headers["set-cookie"]


def test_cross_site_form_post_with_the_cookie_is_refused(
    env: Any, db_url: str, seaweed: SeaweedFS
) -> None:
    rec = env["recs"][0]
    with _client(db_url, seaweed, env["bucket"]) as (c, _):
        assert _sign_in(c).status_code == 200
        # what a hostile page's <form method=post> sends: the cookie, a form body, no header
        forged = c.post(
            f"/api/recordings/{rec.id}/playback",
            content=b"x=1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert forged.status_code == 403 and forged.json()["field"] == "X-Camvault-CSRF"
        # sign-in and sign-out themselves need the header too (login/logout CSRF)
        assert (
            c.post("/api/session", json={"username": "guard", "password": PASSWORD}).status_code
            == 403
        )
        assert c.delete("/api/session").status_code == 403
        ok = c.post(f"/api/recordings/{rec.id}/playback", headers=CSRF)
        assert ok.status_code == 200, ok.text
    actions = [a for (a,) in _rows(db_url, "SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["user.passwd", "signin", "playback"]  # the forged request issued nothing


def test_failed_sign_ins_are_audited_and_throttled_per_user_and_per_address(
    env: Any, db_url: str, seaweed: SeaweedFS
) -> None:
    with _client(
        db_url,
        seaweed,
        env["bucket"],
        signin_max_failures_per_user=3,
        signin_max_failures_per_addr=5,
    ) as (c, _):
        for _ in range(3):
            bad = _sign_in(c, password="wrong password")
            assert bad.status_code == 401 and COOKIE_NAME not in bad.cookies
        # the right password is refused now: the user is throttled
        locked = _sign_in(c)
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
        # unknown names count against the address
        assert _sign_in(c, user="nobody-1", password="x" * 9).status_code == 401
        assert _sign_in(c, user="nobody-2", password="x" * 9).status_code == 401
        assert _sign_in(c, user="someone-else", password="x" * 9).status_code == 429
    rows = _rows(
        db_url,
        "SELECT user_name, detail->>'reason' FROM audit_log WHERE action = 'signin.failed' "
        "ORDER BY id",
    )
    assert [r[1] for r in rows] == ["bad password"] * 3 + ["throttled"] + [
        "no such user or no password"
    ] * 2 + ["throttled"]
    assert _rows(db_url, "SELECT count(*) FROM signin_failures") == [(5,)]
    assert _rows(db_url, "SELECT count(*) FROM web_sessions") == [(0,)]
    # PASSWORD never reaches the audit trail
    assert _rows(
        db_url, "SELECT count(*) FROM audit_log WHERE detail::text LIKE %s", "%horse%"
    ) == [(0,)]


def test_sign_out_expiry_and_disabling_end_sessions_but_tokens_keep_working(
    env: Any, db_url: str, seaweed: SeaweedFS
) -> None:
    with _client(db_url, seaweed, env["bucket"]) as (c, _):
        assert _sign_in(c).status_code == 200
        kept = dict(c.cookies)
        assert c.delete("/api/session", headers=CSRF).status_code == 204
        assert COOKIE_NAME not in c.cookies
        # the old cookie replayed: the session is over in PostgreSQL, not just in the browser
        c.cookies.update(kept)
        assert c.get("/api/cameras").status_code == 401
        c.cookies.clear()
        # expiry
        assert _sign_in(c).status_code == 200
        with psycopg.connect(db_url) as conn:
            conn.execute("UPDATE web_sessions SET expires_at = now() WHERE ended_at IS NULL")
        assert c.get("/api/cameras").status_code == 401
        c.cookies.clear()
        # disabling the user ends the session (and re-enabling does not revive it)
        assert _sign_in(c).status_code == 200
        assert c.get("/api/cameras").status_code == 200
        assert cli_main(["--config", str(env["cfg"]), "users", "disable", "guard"]) == 0
        assert c.get("/api/cameras").status_code == 401
        assert cli_main(["--config", str(env["cfg"]), "users", "enable", "guard"]) == 0
        assert c.get("/api/cameras").status_code == 401
        c.cookies.clear()
        # bearer tokens are unaffected by all of it
        assert c.get("/api/cameras", headers=bearer(env["token"])).status_code == 200
    reasons = _rows(db_url, "SELECT end_reason FROM web_sessions ORDER BY id")
    # the expired one is ended too when the user is disabled
    assert reasons == [("signed_out",), ("user_disabled",), ("user_disabled",)]
    actions = [a for (a,) in _rows(db_url, "SELECT action FROM audit_log ORDER BY id")]
    assert actions.count("signin") == 3 and actions.count("signout") == 1


def test_initial_admin_password_is_made_once(env: Any, db_url: str, seaweed: SeaweedFS) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM user_passwords")
    from camvault.catalog.connector import PsycopgConnector

    owner = PsycopgConnector(db_url, max_size=1)
    try:
        password = ensure_initial_admin(owner)
        assert password is not None and len(password) >= 12
        assert ensure_initial_admin(owner) is None
    finally:
        owner.close()
    with _client(db_url, seaweed, env["bucket"]) as (c, _):
        resp = _sign_in(c, "admin", password)
        assert resp.status_code == 200 and resp.json()["is_admin"] is True
        assert sorted(x["id"] for x in c.get("/api/cameras").json()) == ["lobby-1", "vault-9"]


def test_api_role_cannot_read_password_or_session_hashes(env: Any, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        forced = conn.execute(
            "SELECT relname FROM pg_class WHERE relname IN"
            " ('user_passwords', 'web_sessions', 'signin_failures')"
            " AND relrowsecurity AND relforcerowsecurity ORDER BY relname"
        ).fetchall()
        funcs = conn.execute(
            "SELECT p.proname, p.proconfig, has_function_privilege('public', p.oid, 'EXECUTE'),"
            " has_function_privilege('camvault_api', p.oid, 'EXECUTE')"
            " FROM pg_proc p WHERE p.proname LIKE 'camvault_sign%%'"
            " OR p.proname LIKE 'camvault_session%%' ORDER BY 1"
        ).fetchall()
        for table in ("user_passwords", "web_sessions", "signin_failures"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("SET LOCAL ROLE camvault_api")
                conn.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed names
    assert [r[0] for r in forced] == ["signin_failures", "user_passwords", "web_sessions"]
    assert len(funcs) == 5
    for name, config, public, api in funcs:
        assert config == ["search_path=pg_catalog, public, pg_temp"], name
        assert public is False and api is True, name

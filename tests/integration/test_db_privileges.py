"""Who may call and write what, at the database (issue 12, weaknesses 6 and 10).

* Every SECURITY DEFINER function — today's and any a later migration adds — has a pinned
  search_path with pg_temp last and no EXECUTE for PUBLIC.
* An unrelated login role can call none of them.
* A temporary table named like a real one (pg_temp shadowing) changes nothing.
* A separate pipeline login in camvault_service can write the recorder's tables.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from camvault.acl import hash_token
from camvault.catalog import PsycopgConnector
from camvault.catalog.runs import CatalogRunLog
from tests.integration.access_env import add_cameras, add_recordings, service_access

STRANGER = "camvault_test_stranger"
API_LOGIN = "camvault_test_api_login"
PIPELINE_LOGIN = "camvault_test_pipeline_login"
PINNED = ["pg_catalog", "public", "pg_temp"]


def _login_role(admin_url: str, name: str, member_of: str | None) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # roles are cluster-global: another session may have created it already
        with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        if member_of is not None:
            conn.execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(member_of), sql.Identifier(name))
            )


def _as(url: str, user: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["user"] = user
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


def _definer_functions(
    db_url: str, *, callable_only: bool = False
) -> list[tuple[str, str, list[str], list[str] | None, bool]]:
    """(schema, name, argument types, proconfig, PUBLIC may execute) of every SECURITY
    DEFINER function outside the system schemas (``callable_only``: not trigger functions,
    which nobody can call directly)."""
    with psycopg.connect(db_url) as conn:
        return conn.execute(  # type: ignore[return-value]
            """
            SELECT n.nspname, p.proname,
                   array(SELECT format_type(t, NULL)
                           FROM unnest(p.proargtypes) WITH ORDINALITY AS a(t, i) ORDER BY i),
                   p.proconfig,
                   has_function_privilege('public', p.oid, 'EXECUTE')
              FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.prosecdef
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg_toast%%'
               AND (NOT %s OR p.prorettype <> 'trigger'::regtype)
             ORDER BY 1, 2
            """,
            (callable_only,),
        ).fetchall()


def test_every_security_definer_function_is_pinned_and_not_public(db_url: str) -> None:
    funcs = _definer_functions(db_url)
    names = {f[1] for f in funcs}
    # the known helpers are there (so an empty query cannot pass)
    assert {"camvault_authenticate", "camvault_ensure_partition", "camvault_is_admin"} <= names
    for schema, name, _, config, public_exec in funcs:
        paths = [c.split("=", 1)[1] for c in config or [] if c.startswith("search_path=")]
        assert paths, f"{schema}.{name} has no pinned search_path"
        parts = [p.strip().strip('"') for p in paths[0].split(",")]
        assert parts == PINNED, f"{schema}.{name}: search_path {paths[0]!r}"
        assert not public_exec, f"{schema}.{name} is executable by PUBLIC"


def _call(schema: str, name: str, argtypes: list[str]) -> sql.Composed:
    args = sql.SQL(", ").join(sql.SQL("NULL::{}").format(sql.SQL(t)) for t in argtypes)
    return sql.SQL("SELECT * FROM {}.{}({})").format(
        sql.Identifier(schema), sql.Identifier(name), args
    )


def test_unrelated_login_can_call_none_of_them(pg_admin_url: str, db_url: str) -> None:
    _login_role(pg_admin_url, STRANGER, None)
    funcs = _definer_functions(db_url, callable_only=True)
    assert len(funcs) >= 8
    with psycopg.connect(_as(db_url, STRANGER), autocommit=True) as conn:
        for schema, name, argtypes, _, _ in funcs:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(_call(schema, name, argtypes))


@pytest.fixture
def world(db_url: str) -> dict[str, Any]:
    add_cameras(db_url, "cam-a", "cam-b")
    recs = {c: add_recordings(db_url, c, 3) for c in ("cam-a", "cam-b")}
    with service_access(db_url) as acc:
        alice = acc.add_user("alice")
        acc.add_grant(camera_id="cam-a", user="alice")
    return {"recs": recs, "alice": alice}


def test_temp_tables_cannot_shadow_the_helpers_tables(
    world: dict[str, Any], pg_admin_url: str, db_url: str
) -> None:
    """A caller with the API's privileges creates temporary `users`, `grants` and
    `api_tokens` that make it an admin holding a valid token: the helpers ignore them."""
    _login_role(pg_admin_url, API_LOGIN, "camvault_api")
    alice, recs = world["alice"], world["recs"]
    forged = hash_token("cvt_forged")
    with psycopg.connect(_as(db_url, API_LOGIN), autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE users (id bigint, name text, is_admin boolean, disabled boolean)"
        )
        conn.execute("INSERT INTO pg_temp.users VALUES (%s, 'alice', true, false)", (alice.id,))
        conn.execute(
            "CREATE TEMP TABLE grants (user_id bigint, group_id bigint, camera_id text,"
            " permission text, window_start timestamptz, window_end timestamptz,"
            " expires_at timestamptz, revoked_at timestamptz)"
        )
        conn.execute(
            "INSERT INTO pg_temp.grants (user_id, camera_id, permission)"
            " VALUES (%s, 'cam-b', 'admin')",
            (alice.id,),
        )
        conn.execute(
            "CREATE TEMP TABLE api_tokens (id bigint, user_id bigint, token_hash bytea,"
            " revoked_at timestamptz, expires_at timestamptz, last_used_at timestamptz)"
        )
        conn.execute("INSERT INTO pg_temp.api_tokens VALUES (1, %s, %s)", (alice.id, forged))
        with conn.transaction():
            conn.execute("SELECT set_config('camvault.user_id', %s, true)", (str(alice.id),))
            assert conn.execute("SELECT camvault_is_admin()").fetchone() == (False,)
            seen = {r[0] for r in conn.execute("SELECT id FROM public.recordings").fetchall()}
            cams = {r[0] for r in conn.execute("SELECT id FROM public.cameras").fetchall()}
        assert seen == {r.id for r in recs["cam-a"]}
        assert cams == {"cam-a"}
        assert conn.execute("SELECT * FROM camvault_authenticate(%s)", (forged,)).fetchall() == []


def test_pipeline_login_writes_the_recorder_tables(pg_admin_url: str, db_url: str) -> None:
    """The recorder's catalog writes as a separate login in camvault_service (not the
    owner): runs, camera status and gaps land (they failed with 42501 before)."""
    _login_role(pg_admin_url, PIPELINE_LOGIN, "camvault_service")
    add_cameras(db_url, "cam-r")
    t0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    pool = PsycopgConnector(_as(db_url, PIPELINE_LOGIN), max_size=1)
    try:
        log = CatalogRunLog(pool, "node-1")
        log.run_started("cam-r", "run-1", t0)
        log.camera_offline("cam-r", t0 + timedelta(minutes=9), "stream lost")
        log.run_ended("cam-r", "run-1", t0 + timedelta(minutes=9), "eof", 2, 1234)
        log.run_started("cam-r", "run-2", t0 + timedelta(minutes=10))
        statuses = log.statuses()
        assert [(s["camera_id"], s["state"]) for s in statuses] == [("cam-r", "recording")]
        assert log.gaps("cam-r") == []  # no recordings yet: the view is readable
    finally:
        pool.close()
    with psycopg.connect(db_url) as conn:
        runs = conn.execute(
            "SELECT id, ended_at IS NOT NULL, segments, size_bytes FROM recorder_runs ORDER BY id"
        ).fetchall()
        forced = conn.execute(
            "SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class"
            " WHERE relname IN ('recorder_runs', 'camera_status') ORDER BY 1"
        ).fetchall()
    assert runs == [("run-1", True, 2, 1234), ("run-2", False, 0, 0)]
    assert forced == [("camera_status", True), ("recorder_runs", True)]

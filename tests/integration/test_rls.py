"""Row-level security holds without the API: raw SQL as the API role sees only granted rows."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from camvault.acl import Permission
from camvault.catalog import Catalog, PsycopgConnector
from camvault.catalog.access import AccessCatalog, Identity, RoleConnector
from camvault.catalog.migrate import migrate
from camvault.models import Recording
from tests.integration.access_env import T0, add_cameras, add_recordings, service_access
from tests.support.pg import with_db

API_LOGIN = "camvault_test_api_login"
SERVICE_LOGIN = "camvault_test_service_login"


def _login_role(admin_url: str, name: str, member_of: str) -> None:
    """A login role in the (cluster-global) role; idempotent across test sessions."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # roles are cluster-global: another session may have created it already
        with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(member_of), sql.Identifier(name))
        )


def _as(url: str, user: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["user"] = user
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


@pytest.fixture
def world(db_url: str) -> dict[str, Any]:
    add_cameras(db_url, "cam-a", "cam-b", "cam-c")
    recs = {c: add_recordings(db_url, c, 6) for c in ("cam-a", "cam-b", "cam-c")}
    # a second month, so more than one partition holds rows
    recs["cam-b"] += add_recordings(db_url, "cam-b", 2, start=T0 - timedelta(days=31))
    with service_access(db_url) as acc:
        alice = acc.add_user("alice")
        bob = acc.add_user("bob")
        admin = acc.add_user("root", is_admin=True)
        acc.add_grant(camera_id="cam-a", user="alice")
        # alice sees cam-b only for 10 minutes of footage: recordings 2 and 3
        w = recs["cam-b"]
        acc.add_grant(camera_id="cam-b", user="alice", window_start=w[2].start, window_end=w[3].end)
        acc.add_grant(
            camera_id="cam-c", user="alice", expires_at=datetime.now(UTC) - timedelta(hours=1)
        )
    return {"recs": recs, "alice": alice, "bob": bob, "admin": admin}


@pytest.fixture
def api_conn(pg_admin_url: str, db_url: str) -> Any:
    _login_role(pg_admin_url, API_LOGIN, "camvault_api")
    with psycopg.connect(_as(db_url, API_LOGIN)) as conn:
        yield conn


def _ids(conn: Any, query: str, user_id: int | None) -> set[int]:
    with conn.transaction():
        if user_id is not None:
            conn.execute("SELECT set_config('camvault.user_id', %s, true)", (str(user_id),))
        return {r[0] for r in conn.execute(query).fetchall()}


def test_api_login_sees_only_granted_rows(world: dict[str, Any], api_conn: Any) -> None:
    recs, alice = world["recs"], world["alice"]
    expected = {r.id for r in recs["cam-a"]} | {recs["cam-b"][2].id, recs["cam-b"][3].id}
    assert _ids(api_conn, "SELECT id FROM recordings", alice.id) == expected
    assert _ids(api_conn, "SELECT id FROM recordings", None) == set()
    assert _ids(api_conn, "SELECT id FROM recordings", world["bob"].id) == set()
    every = {r.id for rs in recs.values() for r in rs}
    assert _ids(api_conn, "SELECT id FROM recordings", world["admin"].id) == every
    # the setting was transaction-local: the next transaction has no user
    assert _ids(api_conn, "SELECT id FROM recordings", None) == set()
    row = api_conn.execute("SELECT current_setting('camvault.user_id', true)").fetchone()
    assert row[0] in (None, "")
    api_conn.rollback()


def test_partitions_queried_directly_hide_forbidden_rows(
    world: dict[str, Any], api_conn: Any, db_url: str
) -> None:
    recs, alice = world["recs"], world["alice"]
    allowed = {r.id for r in recs["cam-a"]} | {recs["cam-b"][2].id, recs["cam-b"][3].id}
    with psycopg.connect(db_url) as conn:
        parts = [
            r[0]
            for r in conn.execute(
                "SELECT inhrelid::regclass::text FROM pg_inherits"
                " WHERE inhparent = 'recordings'::regclass"
            )
        ]
        seen_rows = {
            p: conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(p))
            ).fetchone()[0]  # type: ignore[index]
            for p in parts
        }
    assert sum(1 for n in seen_rows.values() if n) >= 2  # rows really are in 2+ partitions
    for part in parts:
        q = sql.SQL("SELECT id FROM {}").format(sql.Identifier(part)).as_string(api_conn)
        got = _ids(api_conn, q, alice.id)
        assert got <= allowed, part
        assert _ids(api_conn, q, None) == set(), part
        assert _ids(api_conn, q, world["bob"].id) == set(), part


def test_every_partition_forced_including_new_ones(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT camvault_ensure_partition('2031-05-17T00:00:00Z')")
        conn.commit()
        rows = conn.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
            " (SELECT array_agg(policyname ORDER BY policyname) FROM pg_policies p"
            "   WHERE p.tablename = c.relname)"
            " FROM pg_class c WHERE c.relname LIKE 'recordings%%' AND c.relkind IN ('r','p')"
        ).fetchall()
        others = conn.execute(
            "SELECT relname FROM pg_class WHERE relname IN ('cameras', 'audit_log')"
            " AND relrowsecurity AND relforcerowsecurity"
        ).fetchall()
    names = {r[0] for r in rows}
    assert "recordings_y2031m05" in names and "recordings" in names
    for name, enabled, forced, policies in rows:
        assert enabled and forced, name
        assert policies == ["recordings_api", "recordings_service"], name
    assert {r[0] for r in others} == {"cameras", "audit_log"}


def test_api_role_owns_nothing_and_cannot_bypass(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        role = conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles"
            " WHERE rolname = 'camvault_api'"
        ).fetchone()
        owned = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relowner = 'camvault_api'::regrole"
        ).fetchone()
        funcs = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proowner = 'camvault_api'::regrole"
        ).fetchone()
    assert role == (False, False, False)
    assert owned == (0,) and funcs == (0,)


def test_cameras_and_audit_log_policies(world: dict[str, Any], api_conn: Any) -> None:
    alice, bob = world["alice"], world["bob"]
    with api_conn.transaction():
        api_conn.execute("SELECT set_config('camvault.user_id', %s, true)", (str(alice.id),))
        cams = {r[0] for r in api_conn.execute("SELECT id FROM cameras")}
        # an entry in her own name is allowed ...
        api_conn.execute(
            "INSERT INTO audit_log (user_id, action) VALUES (%s, 'playback')", (alice.id,)
        )
        # ... but she cannot read the trail back (admins only)
        assert api_conn.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)
    assert cams == {"cam-a", "cam-b"}  # cam-c's grant expired
    with pytest.raises(psycopg.errors.InsufficientPrivilege), api_conn.transaction():
        api_conn.execute("SELECT set_config('camvault.user_id', %s, true)", (str(alice.id),))
        api_conn.execute("INSERT INTO audit_log (user_id, action) VALUES (%s, 'forged')", (bob.id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege), api_conn.transaction():
        api_conn.execute("SELECT set_config('camvault.user_id', %s, true)", (str(alice.id),))
        api_conn.execute(
            "INSERT INTO grants (user_id, camera_id) VALUES (%s, 'cam-c')", (alice.id,)
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege), api_conn.transaction():
        api_conn.execute("SELECT token_hash FROM api_tokens")
    with api_conn.transaction():
        api_conn.execute("SELECT set_config('camvault.user_id', %s, true)", (str(bob.id),))
        assert api_conn.execute("SELECT count(*) FROM cameras").fetchone() == (0,)
        assert api_conn.execute("SELECT count(*) FROM grants").fetchone() == (0,)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), api_conn.transaction():
        api_conn.execute("UPDATE recordings SET size_bytes = 1")


def test_role_connector_drops_to_api_role_on_pooled_connections(
    world: dict[str, Any], db_url: str
) -> None:
    # one pooled superuser connection: what one transaction sets must not reach the next
    pool = PsycopgConnector(db_url, min_size=1, max_size=1)
    try:
        access = AccessCatalog(RoleConnector(pool, "camvault_api"))
        alice = Identity(world["alice"].id, "alice", False, 0)
        with pool.transaction() as s:
            assert s.fetchone("SELECT count(*) AS n FROM recordings")["n"] > 0  # type: ignore[index]
        assert {c.id for c in access.acting(alice).cameras()} == {"cam-a", "cam-b"}
        assert access.cameras() == []  # no acting user: nothing
        with RoleConnector(pool, "camvault_api").transaction() as s:
            who = s.fetchone("SELECT current_user AS u, session_user AS s")
        assert who is not None and who["u"] == "camvault_api"
        with pool.transaction() as s:  # the role was transaction-local too
            who = s.fetchone("SELECT current_user AS u")
        assert who is not None and who["u"] != "camvault_api"
    finally:
        pool.close()


def test_policy_helpers_run_once_per_query(world: dict[str, Any], api_conn: Any) -> None:
    with api_conn.transaction():
        api_conn.execute(
            "SELECT set_config('camvault.user_id', %s, true)", (str(world["alice"].id),)
        )
        plan = "\n".join(
            r[0]
            for r in api_conn.execute(
                "EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM recordings WHERE camera_id = 'cam-a'"
                " AND end_time > %s AND start_time < %s ORDER BY start_time",
                (T0, T0 + timedelta(hours=1)),
            )
        )
    # the helpers are InitPlans (evaluated once), never per-row SubPlans over grants
    assert "InitPlan" in plan, plan
    assert "Seq Scan on grants" not in plan, plan


def test_service_login_keeps_the_spine_working(
    world: dict[str, Any], pg_admin_url: str, db_url: str
) -> None:
    """A non-superuser pipeline login (member of camvault_service) commits and lists
    recordings under FORCE ROW LEVEL SECURITY — including into a brand-new partition."""
    _login_role(pg_admin_url, SERVICE_LOGIN, "camvault_service")
    pool = PsycopgConnector(_as(db_url, SERVICE_LOGIN), max_size=1)
    try:
        catalog = Catalog(pool)
        start = datetime(2030, 2, 3, 4, 5, 6, tzinfo=UTC)
        rec = Recording(
            camera_id="cam-c",
            start_time=start,
            end_time=start + timedelta(minutes=5),
            duration_seconds=300.0,
            s3_bucket="b",
            s3_key="cam-c/2030/02/03/cam-c_20300203T040506Z.mp4",
            size_bytes=10,
            checksum_algorithm="sha256",
            checksum="ab" * 32,
            codec="h264",
            width=320,
            height=240,
            storage_class="STANDARD",
            sse="AES256",
            etag="e",
        )
        row, created = catalog.commit_recording(rec)
        again, created_again = catalog.commit_recording(rec)
        assert created and not created_again and again.id == row.id
        listed = catalog.list_recordings("cam-c", start, start + timedelta(hours=1))
        assert [r.id for r in listed] == [row.id]
        assert len(catalog.list_cameras()) == 3
    finally:
        pool.close()
    with psycopg.connect(db_url) as conn:
        forced = conn.execute(
            "SELECT relforcerowsecurity FROM pg_class WHERE relname = 'recordings_y2030m02'"
        ).fetchone()
    assert forced == (True,)


def test_grant_permissions_are_ordered(world: dict[str, Any], db_url: str) -> None:
    with service_access(db_url) as acc:
        g = acc.add_grant(camera_id="cam-c", user="bob", permission=Permission.EXPORT)
        assert g.grant.permission is Permission.EXPORT and g.user_name == "bob"
        acc.revoke_grant(g.grant.id)
        assert [x.grant.id for x in acc.list_grants(user="bob")] == []
        assert [x.grant.id for x in acc.list_grants(user="bob", include_revoked=True)] == [
            g.grant.id
        ]


def test_non_superuser_owner_migrates_and_is_subject_to_force(pg_admin_url: str) -> None:
    """Migrations as a separate (non-superuser) owner role: with FORCE the owner itself goes
    through the policies — the service policies let its spine work; as the API role it
    sees nothing without a user."""
    owner = "camvault_test_owner"
    dbname = f"camvault_own_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(owner)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(dbname), sql.Identifier(owner)
            )
        )
    url = _as(with_db(pg_admin_url, dbname), owner)
    try:
        migrate(url)
        assert migrate(url) == []  # idempotent, roles included
        with psycopg.connect(url) as conn:
            conn.execute("INSERT INTO cameras (id) VALUES ('own-1')")
            conn.execute("SELECT camvault_ensure_partition(%s)", (T0,))
            conn.execute(
                "INSERT INTO recordings (camera_id, start_time, end_time, duration_seconds,"
                " s3_bucket, s3_key, size_bytes, checksum_algorithm, checksum, codec, width,"
                " height, etag) VALUES ('own-1', %s, %s, 300, 'b', 'k', 1, 'sha256', 'c',"
                " 'h264', 1, 1, 'e')",
                (T0, T0 + timedelta(minutes=5)),
            )
            conn.commit()
            assert conn.execute("SELECT count(*) FROM recordings").fetchone() == (1,)
            owner_row = conn.execute(
                "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'recordings'"
            ).fetchone()
            assert owner_row == (owner,)
            with conn.transaction():
                conn.execute("SET LOCAL ROLE camvault_api")
                assert conn.execute("SELECT count(*) FROM recordings").fetchone() == (0,)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )

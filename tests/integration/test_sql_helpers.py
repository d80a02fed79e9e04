"""Migration 0014's SQL helpers (``camvault_visible_range``, ``camvault_storage_state``):
what they answer, and that the planner inlines them into every named query that uses them
— a helper that stopped being inlinable (a sub-select in its body, SECURITY DEFINER, a SET
clause, plpgsql) would run once per row and show up by name in the plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from camvault.catalog.queries import load

HELPERS = ("camvault_visible_range", "camvault_storage_state")
USERS = [
    *(("access.sql", n) for n in ("recordings_page", "recordings_page_after", "visible_recording")),
    *(("timeline.sql", n) for n in ("timeline_spans", "playlist_recordings")),
]
PARAMS = {
    "camera_id": "cam-1",
    "start": datetime(2026, 10, 10, tzinfo=UTC),
    "end": datetime(2026, 10, 11, tzinfo=UTC),
    "limit": 100,
    "after_start": datetime(2026, 10, 10, 1, tzinfo=UTC),
    "after_id": 1,
    "id": 1,
    "tolerance": "1 second",
}


@pytest.mark.parametrize(("filename", "name"), USERS)
def test_the_helpers_are_inlined_into_the_named_queries(
    db_url: str, filename: str, name: str
) -> None:
    text = load(filename)[name]
    assert any(h in text for h in HELPERS)  # the query does use a helper
    with psycopg.connect(db_url) as conn:
        conn.execute("SET LOCAL ROLE camvault_api")
        conn.execute("SELECT set_config('camvault.user_id', '1', true)")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN (VERBOSE, COSTS OFF) " + text, PARAMS))
    assert not [h for h in HELPERS if h in plan], plan
    if "camvault_visible_range" in text:
        # the ACL look-ups stay InitPlans: once per query, not once per row
        assert "InitPlan" in plan and "camvault_acl_cameras()" in plan, plan


def test_storage_state(db_url: str) -> None:
    now = datetime.now(UTC)
    cases = [
        ("STANDARD", None, None, "STANDARD"),
        ("STANDARD_IA", "restored", None, "STANDARD_IA"),  # not archived: its own class
        ("GLACIER", None, None, "archived"),
        ("glacier", "requested", None, "restoring"),
        ("DEEP_ARCHIVE", "in_progress", None, "restoring"),
        ("GLACIER", "restored", now + timedelta(days=1), "restored"),
        ("GLACIER", "restored", None, "restored"),
        ("GLACIER", "restored", now - timedelta(days=1), "archived"),  # the copy lapsed
    ]
    with psycopg.connect(db_url) as conn:
        for storage_class, status, until, want in cases:
            (got,) = conn.execute(
                "SELECT camvault_storage_state(%s, %s, %s)", (storage_class, status, until)
            ).fetchone() or (None,)
            assert got == want, (storage_class, status, until)


def test_visible_range_is_null_for_whole_access_and_asks_the_grants_otherwise(
    db_url: str,
) -> None:
    t0, t1 = PARAMS["start"], PARAMS["end"]
    sql = "SELECT camvault_visible_range('cam-1', %s, %s, %s, %s)"
    with psycopg.connect(db_url) as conn:
        # no acting user (a service connection): the whole recording
        assert conn.execute(sql, (t0, t1, [], False)).fetchone() == (None,)
        conn.execute("SELECT set_config('camvault.user_id', '999999', false)")
        assert conn.execute(sql, (t0, t1, ["cam-1"], False)).fetchone() == (None,)
        assert conn.execute(sql, (t0, t1, [], True)).fetchone() == (None,)
        # neither: camvault_acl_range — a user without grants sees nothing (empty, not NULL)
        (r,) = conn.execute(sql + "::text", (t0, t1, ["cam-2"], False)).fetchone() or (None,)
        assert r == "{}"

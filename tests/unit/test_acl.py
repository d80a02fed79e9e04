"""The pure ACL rules, token helpers and API parameter parsing — no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camvault.acl import (
    Grant,
    Permission,
    Principal,
    can_see_camera,
    covers,
    effective,
    hash_token,
    is_active,
    new_token,
    token_hint,
)
from camvault.api import params
from camvault.api.params import ApiError
from camvault.errors import InputError

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
ALICE = Principal(user_id=1, group_ids=frozenset({10}))


def g(**kw: object) -> Grant:
    base: dict[str, object] = {"id": 1, "camera_id": "c1", "permission": Permission.VIEW}
    base.setdefault("user_id", None if "group_id" in kw else 1)
    base.update(kw)
    return Grant(**base)  # type: ignore[arg-type]


def test_permissions_are_ordered_and_parsed() -> None:
    assert Permission.VIEW < Permission.EXPORT < Permission.ADMIN
    assert Permission.parse(" Export ") is Permission.EXPORT
    with pytest.raises(InputError, match="view, export, admin"):
        Permission.parse("root")


def test_grant_shape_is_validated() -> None:
    with pytest.raises(InputError, match="exactly one"):
        Grant(1, "c1", Permission.VIEW, user_id=1, group_id=2)
    with pytest.raises(InputError, match="both"):
        g(window_start=NOW)
    with pytest.raises(InputError, match="after"):
        g(window_start=NOW, window_end=NOW)


def test_active_means_not_revoked_and_not_expired() -> None:
    assert is_active(g(), NOW)
    assert is_active(g(expires_at=NOW + timedelta(seconds=1)), NOW)
    assert not is_active(g(expires_at=NOW), NOW)  # expiry is exclusive
    assert not is_active(g(revoked_at=NOW - H), NOW)


def test_window_covers_by_overlap() -> None:
    w = g(window_start=NOW, window_end=NOW + 2 * H)
    assert covers(w, "c1", NOW, NOW + H, NOW)
    assert covers(w, "c1", NOW, NOW + 2 * H, NOW)  # exactly the window: one recording share
    assert covers(w, "c1", NOW - timedelta(seconds=1), NOW + H, NOW)  # straddles start
    assert covers(w, "c1", NOW + H, NOW + 3 * H, NOW)  # straddles end
    assert not covers(w, "c1", NOW + 2 * H, NOW + 3 * H, NOW)  # only touches the end
    assert not covers(w, "c1", NOW - H, NOW, NOW)  # only touches the start
    assert not covers(w, "c2", NOW, NOW + H, NOW)
    assert covers(g(), "c1", NOW - 1000 * H, NOW - 999 * H, NOW)


def test_effective_permission_over_user_and_group_grants() -> None:
    grants = [
        g(id=1, permission=Permission.VIEW),
        g(id=2, user_id=None, group_id=10, permission=Permission.EXPORT),
        g(id=3, user_id=None, group_id=11, permission=Permission.ADMIN),
        g(id=4, user_id=2, permission=Permission.ADMIN),
    ]
    assert effective(grants, ALICE, "c1", NOW, NOW + H, NOW) is Permission.EXPORT
    assert effective(grants, Principal(3), "c1", NOW, NOW + H, NOW) is None
    assert effective([], Principal(3, is_admin=True), "c9", NOW, NOW, NOW) is Permission.ADMIN
    disabled = Principal(1, frozenset({10}), is_admin=True, disabled=True)
    assert effective(grants, disabled, "c1", NOW, NOW + H, NOW) is None


def test_camera_visible_with_any_active_grant_even_windowed() -> None:
    windowed = g(window_start=NOW - 10 * H, window_end=NOW - 9 * H)
    assert can_see_camera([windowed], ALICE, "c1", NOW)
    assert not can_see_camera([g(expires_at=NOW - H)], ALICE, "c1", NOW)
    assert not can_see_camera([windowed], Principal(1, disabled=True), "c1", NOW)
    assert can_see_camera([], Principal(5, is_admin=True), "any", NOW)


def test_tokens_are_random_and_only_hashes_compare() -> None:
    a, b = new_token(), new_token()
    assert a != b and a.startswith("cvt_") and len(a) > 40
    assert hash_token(a) == hash_token(a) and len(hash_token(a)) == 32
    assert hash_token(a) != hash_token(b)
    assert a.startswith(token_hint(a)) and len(token_hint(a)) < 16


# API parameters --------------------------------------------------------------------------
def test_time_range_defaults_and_errors() -> None:
    span = timedelta(days=31)
    start, end = params.time_range(None, None, now=NOW, max_span=span)
    assert (start, end) == (NOW - 24 * H, NOW)
    start, end = params.time_range("2026-11-20T10:00:00+02:00", None, now=NOW, max_span=span)
    assert start == datetime(2026, 11, 20, 8, tzinfo=UTC) and end == start + 24 * H
    cases = {
        ("2026-11-20T10:00:00", None): "start",  # naive
        ("yesterday", None): "start",
        (None, "2026-13-01T00:00:00Z"): "end",
        ("2026-11-20T10:00:00Z", "2026-11-20T09:00:00Z"): "end",  # reversed
        ("2026-01-01T00:00:00Z", "2026-11-20T00:00:00Z"): "end",  # too long
        ("x" * 100, None): "start",
        (None, "0001-01-01T12:00:00Z"): "end",  # the default start would be before year 1
        ("9999-12-31T12:00:00Z", None): "start",
        ("0001-01-01T00:00:00+14:00", None): "start",
    }
    for (s, e), field in cases.items():
        with pytest.raises(ApiError) as err:
            params.time_range(s, e, now=NOW, max_span=span)
        assert err.value.status == 400 and err.value.field == field
        assert err.value.message.startswith(field)


def test_cursor_round_trip_and_tampering() -> None:
    s, e = NOW - H, NOW
    cur = params.encode_cursor("c1", s, e, NOW - timedelta(minutes=30), 42)
    got = params.decode_cursor(cur, "c1")
    assert (got.start, got.end, got.last_start, got.last_id) == (
        s,
        e,
        NOW - timedelta(minutes=30),
        42,
    )
    with pytest.raises(ApiError, match="different camera"):
        params.decode_cursor(cur, "c2")
    for bad in ("!!!", "e30", cur[:-3], "eyJpIjoxfQ", "x" * 600):
        with pytest.raises(ApiError) as err:
            params.decode_cursor(bad, "c1")
        assert err.value.field == "cursor"


def test_cursor_carries_its_range() -> None:
    """No range given → the cursor's own (not re-anchored on "now"); an explicit range
    must equal it, else 400 naming ``cursor``."""
    s, e = NOW - H, NOW
    cur = params.decode_cursor(params.encode_cursor("c1", s, e, s, 1), "c1")
    later = NOW + timedelta(minutes=7)
    span = timedelta(days=1)
    assert params.page_range(None, None, cur, now=later, max_span=span) == (s, e)
    same = params.page_range(s.isoformat(), e.isoformat(), cur, now=later, max_span=span)
    assert same == (s, e)
    for start, end in ((None, later.isoformat()), ((s - H).isoformat(), None)):
        with pytest.raises(ApiError) as err:
            params.page_range(start, end, cur, now=later, max_span=span)
        assert err.value.status == 400 and err.value.field == "cursor"
    with pytest.raises(ApiError) as err:  # a tampered range longer than allowed
        params.page_range(None, None, cur, now=later, max_span=timedelta(minutes=5))
    assert err.value.field == "cursor"


@given(st.text(max_size=80))
def test_any_cursor_text_is_rejected_cleanly_or_accepted(text: str) -> None:
    try:
        params.decode_cursor(text, "c1")
    except ApiError as exc:
        assert exc.status == 400 and exc.field == "cursor"


@given(st.text(max_size=80))
def test_any_time_text_parses_or_names_the_field(text: str) -> None:
    try:
        value = params.parse_time(text, "start")
    except ApiError as exc:
        assert exc.status == 400 and exc.field == "start"
    else:
        assert value is None or value.tzinfo is not None


def test_visible_range_is_the_union_of_windows_clipped_to_the_recording() -> None:
    from camvault.acl import visible_range

    m = timedelta(minutes=1)
    rec = (NOW, NOW + 5 * m)
    grants = [
        g(id=1, window_start=NOW - m, window_end=NOW + m),
        g(id=2, window_start=NOW + 2 * m, window_end=NOW + 3 * m),
        g(id=3, window_start=NOW + 3 * m, window_end=NOW + 4 * m),  # touches 2: merged
        g(id=4, window_start=NOW + 4 * m, window_end=NOW + 9 * m, permission=Permission.EXPORT),
        g(id=5, camera_id="c2"),
    ]
    got = visible_range(grants, ALICE, "c1", *rec, NOW)
    assert got == [(NOW, NOW + m), (NOW + 2 * m, NOW + 5 * m)]
    assert visible_range(grants, ALICE, "c1", *rec, NOW, Permission.EXPORT) == [
        (NOW + 4 * m, NOW + 5 * m)
    ]
    assert visible_range([*grants, g(id=6)], ALICE, "c1", *rec, NOW) == [rec]
    assert visible_range([], Principal(9, is_admin=True), "c1", *rec, NOW) == [rec]
    assert visible_range(grants, Principal(1, disabled=True), "c1", *rec, NOW) == []

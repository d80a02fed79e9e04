from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camvault.errors import InputError
from camvault.keys import camera_prefix, normalize_prefix, object_key, parse_key

T = datetime(2026, 11, 26, 13, 4, 55, 812000, tzinfo=UTC)


def test_key_layout_matches_the_design() -> None:
    assert object_key("", "lobby-1", T, "mp4") == (
        "lobby-1/2026/11/26/lobby-1_20261126T130455Z.mp4"
    )
    assert object_key("acme/", "lobby-1", T, ".MP4") == (
        "acme/lobby-1/2026/11/26/lobby-1_20261126T130455Z.mp4"
    )


def test_key_uses_utc_whatever_the_input_zone() -> None:
    seoul = T.astimezone(timezone(timedelta(hours=9)))
    assert object_key("", "c", seoul, "mp4") == object_key("", "c", T, "mp4")


def test_day_boundary_in_utc() -> None:
    late = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert object_key("", "c", late, "ts") == "c/2026/12/31/c_20261231T235959Z.ts"


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "-lead", "x" * 65, "sp ace", "é"])
def test_hostile_camera_ids_are_rejected(bad: str) -> None:
    with pytest.raises(InputError, match="invalid camera id"):
        object_key("", bad, T, "mp4")


def test_naive_time_and_odd_extension_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        object_key("", "c", T.replace(tzinfo=None), "mp4")
    with pytest.raises(InputError, match="extension"):
        object_key("", "c", T, "exe")


def test_prefix_normalization() -> None:
    assert normalize_prefix("") == ""
    assert normalize_prefix("/a/b/") == "a/b/"
    assert camera_prefix("a", "cam") == "a/cam/"


@given(
    camera=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True),
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    prefix=st.sampled_from(["", "p/", "deep/er/"]),
    ext=st.sampled_from(["mp4", "mkv", "ts", "mov"]),
)
def test_parse_inverts_key(camera: str, start: datetime, prefix: str, ext: str) -> None:
    key = object_key(prefix, camera, start, ext)
    assert parse_key(prefix, key) == (camera, start.replace(microsecond=0), ext)


@given(
    a=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    b=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_keys_sort_by_time_within_a_camera(a: datetime, b: datetime) -> None:
    a, b = a.replace(tzinfo=UTC, microsecond=0), b.replace(tzinfo=UTC, microsecond=0)
    ka, kb = object_key("", "cam", a, "mp4"), object_key("", "cam", b, "mp4")
    assert (ka < kb) == (a < b)


@pytest.mark.parametrize(
    "key",
    [
        "lobby-1/2026/11/26/other_20261126T130455Z.mp4",  # camera mismatch
        "lobby-1/2026/11/27/lobby-1_20261126T130455Z.mp4",  # date path disagrees
        "lobby-1/2026/11/26/lobby-1_20261126T130455.mp4",  # no Z
        "notes.txt",
    ],
)
def test_parse_rejects_foreign_keys(key: str) -> None:
    assert parse_key("", key) is None

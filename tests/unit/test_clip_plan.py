"""The clip planner: where a clip is cut, where its gaps are (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from camvault.errors import InputError
from camvault.export.clip import (
    CUT_AFTER,
    CUT_BEFORE,
    Keyframes,
    Source,
    ffconcat,
    first_offset,
    plan_clip,
)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)


def src(i: int, start: datetime, minutes: int = 5) -> Source:
    return Source(i, start, start + minutes * M, f"http://s3/r{i}.mp4?sig='x'")


SOURCES = [src(1, T0), src(2, T0 + 5 * M), src(3, T0 + 12 * M)]  # gap 10:10-10:12


def test_cut_at_keyframe_before_when_allowed_and_gap_kept() -> None:
    start, end = T0 + 2 * M + 30 * S, T0 + 14 * M
    assert first_offset(SOURCES, start) == 150.0
    plan = plan_clip(SOURCES, start, end, keyframes=Keyframes(149.0, 151.0), allowed_start=T0)
    assert plan.cut == CUT_BEFORE and plan.actual_start == T0 + 149 * S
    assert plan.actual_end == end
    assert plan.gaps == ((T0 + 10 * M, T0 + 12 * M),)
    e1, e2, e3 = plan.entries
    assert (e1.inpoint, e1.outpoint, e1.duration) == (149.0, 300.0, 151.0)
    assert (e2.inpoint, e2.outpoint, e2.duration) == (None, 300.0, 420.0)  # reaches 10:12
    assert (e3.inpoint, e3.outpoint, e3.duration) == (None, 120.0, None)
    text = ffconcat(plan)
    assert text.startswith("ffconcat version 1.0\n")
    assert "file 'http://s3/r1.mp4?sig='\\''x'\\'''" in text
    assert "inpoint 149.000000" in text


def test_cut_after_when_the_keyframe_before_is_outside_the_grant() -> None:
    start = T0 + 2 * M + 30 * S
    plan = plan_clip(
        SOURCES[:1], start, T0 + 4 * M, keyframes=Keyframes(149.0, 151.0), allowed_start=start
    )
    assert plan.cut == CUT_AFTER and plan.actual_start == T0 + 151 * S
    assert plan.entries[0].inpoint == 151.0 and plan.entries[0].outpoint == 240.0


def test_range_starting_in_a_gap_starts_at_the_footage() -> None:
    plan = plan_clip(SOURCES[2:], T0 + 11 * M, T0 + 13 * M, keyframes=None, allowed_start=T0)
    assert plan.actual_start == T0 + 12 * M and plan.cut == CUT_AFTER
    assert plan.entries[0].inpoint is None and plan.gaps == ()


def test_no_keyframe_inside_the_window_is_an_input_error() -> None:
    start = T0 + 4 * M
    with pytest.raises(InputError):
        plan_clip(
            SOURCES[:1], start, start + S, keyframes=Keyframes(239.0, 241.0), allowed_start=start
        )
    with pytest.raises(InputError):
        plan_clip([], start, start + S, keyframes=None, allowed_start=start)

"""Pure logic of the web UI's back end: gaps between spans, password hashing rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from camvault.catalog.timeline import Gap, Span, gaps_between
from camvault.errors import InputError
from camvault.sessions import hash_password, verify_password

T = datetime(2026, 11, 20, tzinfo=UTC)


def _span(a: float, b: float, state: str = "STANDARD") -> Span:
    return Span(T + timedelta(seconds=a), T + timedelta(seconds=b), state, 1, ("h264",))


def test_gaps_are_the_uncovered_stretches_between_spans() -> None:
    spans = [_span(0, 10), _span(10, 20, "archived"), _span(20.5, 30), _span(40, 50)]
    # a change of state is no gap; half a second is within the abutting tolerance
    assert gaps_between(spans) == [Gap(T + timedelta(seconds=30), T + timedelta(seconds=40))]
    assert gaps_between([]) == [] and gaps_between([_span(0, 5)]) == []


def test_overlapping_spans_do_not_make_negative_gaps() -> None:
    assert gaps_between([_span(0, 100), _span(10, 20), _span(30, 40)]) == []


def test_passwords_are_argon2id_salted_and_bounded() -> None:
    a, b = hash_password("long enough 1"), hash_password("long enough 1")
    assert a.startswith("$argon2id$") and a != b
    assert verify_password(a, "long enough 1") and not verify_password(a, "long enough 2")
    assert not verify_password(None, "long enough 1")  # unknown user: dummy verify, False
    assert not verify_password("not-a-hash", "long enough 1")
    with pytest.raises(InputError):
        hash_password("short")
    with pytest.raises(InputError):
        hash_password("x" * 2000)

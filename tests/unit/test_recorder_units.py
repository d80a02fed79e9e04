"""Pure parts of the recorder: clock reasoning, URL masking, the segment list, the command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camvault.recorder import (
    Redactor,
    ffmpeg_command,
    mask_url,
    split_incomplete_fragment,
    write_source,
)
from camvault.recorder.timeline import Timeline
from camvault.segmenter import ListedSegment, finished, read_segment_list

T0 = datetime(2026, 11, 26, 13, 0, 0, tzinfo=UTC)


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def test_run_is_anchored_on_wall_clock_and_segments_abut() -> None:
    tl = Timeline()
    p = tl.place(300.0, T0 + _s(300.2))  # seen finished 0.2 s after its real end
    assert p.start == T0 + _s(0.2) and p.note is None
    end = tl.advance(p.start, 300.0)
    q = tl.place(299.9, T0 + _s(600.4))
    assert q.start == end  # contiguous, whatever the polling delay


def test_slow_media_clock_catches_up_by_less_than_a_frame() -> None:
    tl = Timeline(max_slew_seconds=0.015)
    end = tl.advance(tl.place(300.0, T0 + _s(300)).start, 300.0)
    # the camera's clock is slow: 300 media seconds took 305 wall seconds
    q = tl.place(300.0, T0 + _s(605))
    assert q.start - end == _s(0.015)


def test_fast_or_jumping_media_clock_never_overlaps() -> None:
    tl = Timeline()
    end = tl.advance(tl.place(10.0, T0 + _s(10)).start, 3600.0)  # a forward jump inside
    q = tl.place(10.0, T0 + _s(20))
    assert q.start == end and q.note and "ahead" in q.note


def test_new_run_never_starts_before_previous_end() -> None:
    tl = Timeline()
    end = tl.advance(tl.place(10.0, T0 + _s(10)).start, 10.0)
    tl.new_run()
    # the wall clock stepped back 30 s (NTP) before the reconnect
    q = tl.place(5.0, T0 - _s(20))
    assert q.start == end and q.note and "overlap" in q.note


def test_a_handed_on_floor_keeps_two_holders_apart() -> None:
    """A fleet hand-off: the old holder noticed its run's first segment 0.9 s late (so its
    whole run is placed 0.9 s late), the new holder noticed its first one on time. Keys
    name segments by start second: unseeded, the new holder's first segment would share
    the old one's last second (one key, two objects) and overlap it; with the old holder's
    last end as its floor, it does neither."""
    old = Timeline()
    first = old.place(4.0, T0 + _s(5.1))  # truly 0.2-4.2 s, placed 1.1-5.1
    last = old.place(1.2, T0 + _s(6.3))  # truly 4.2-5.4 (stopped 1.2 s after the cut)
    assert last.start == old.advance(first.start, 4.0) == T0 + _s(5.1)
    old_end = old.advance(last.start, 1.2)
    # the new holder's first segment: truly 5.7-7.7 (a 0.3 s hand-off), seen at its end
    unseeded = Timeline().place(2.0, T0 + _s(7.7))
    assert unseeded.start == T0 + _s(5.7) < old_end
    assert unseeded.start.replace(microsecond=0) == last.start.replace(microsecond=0)
    q = Timeline(floor=old_end).place(2.0, T0 + _s(7.7))
    assert q.start == old_end == T0 + _s(6.3) and q.note and "overlap" in q.note
    assert q.start.replace(microsecond=0) > last.start.replace(microsecond=0)


def test_the_handoff_floor_is_never_in_the_second_the_last_segment_began() -> None:
    """Seen in testing: a stop that raced ffmpeg's cut left a 0.4 s last segment
    (33.170-33.570): the next holder, anchored at 33.6, would share second 33 — its key."""
    old = Timeline()
    assert old.handoff_floor() is None  # nothing placed: no floor to hand on
    first = old.place(2.0, T0 + _s(33.17))
    old.advance(first.start, 2.0)
    last = old.place(0.4, T0 + _s(33.6))
    assert last.start == T0 + _s(33.17)
    assert old.advance(last.start, 0.4) == old.floor == T0 + _s(33.57)
    assert old.handoff_floor() == T0 + _s(34)
    q = Timeline(floor=old.handoff_floor()).place(2.0, T0 + _s(35.6))
    assert q.start == T0 + _s(34) and q.note
    # a last segment over a second long: its end is in a later second already
    old.advance(old.place(1.2, T0 + _s(35.2)).start, 1.2)
    assert old.handoff_floor() == old.floor == T0 + _s(34.77)


def test_raise_floor_never_lowers_it() -> None:
    tl = Timeline()
    tl.raise_floor(None)
    assert tl.floor is None
    tl.raise_floor(T0 + _s(5))
    tl.raise_floor(T0 + _s(2))
    assert tl.floor == T0 + _s(5)
    tl.new_run()
    assert tl.place(1.0, T0 + _s(3)).start == T0 + _s(5)


def test_place_needs_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Timeline().place(1.0, datetime(2026, 1, 1))


@given(
    st.lists(
        st.tuples(
            st.floats(-100, 4000, allow_nan=False),  # media duration (may be garbage)
            st.floats(-4000, 4000, allow_nan=False),  # wall-clock step (may jump back)
            st.booleans(),  # connection lost before this segment
        ),
        min_size=1,
        max_size=40,
    )
)
def test_no_overlap_no_negative_length_whatever_the_clocks(
    steps: list[tuple[float, float, bool]],
) -> None:
    tl = Timeline()
    wall = T0
    prev_end = None
    for media, step, lost in steps:
        wall += _s(step)
        if lost:
            tl.new_run()
        p = tl.place(media, wall)
        end = tl.advance(p.start, media)
        assert end >= p.start
        if prev_end is not None:
            assert p.start >= prev_end
        prev_end = end


def test_mask_url_and_redactor() -> None:
    url = "rtsp://admin:p%40ss:w0rd@10.0.0.21:554/stream1"
    assert mask_url(url) == "rtsp://admin:***@10.0.0.21:554/stream1"
    assert mask_url("rtsp://10.0.0.21/s") == "rtsp://10.0.0.21/s"
    assert mask_url("rtsp://user@10.0.0.21/s") == "rtsp://user:***@10.0.0.21/s"
    redact = Redactor(url)
    line = f"[rtsp @ 0x1] {url}: 401 for admin with p@ss:w0rd and p%40ss:w0rd"
    out = redact(line)
    assert "w0rd" not in out and "p@ss" not in out and "p%40ss" not in out
    assert "rtsp://admin:***@10.0.0.21:554/stream1" in out


def test_segment_list_finality(tmp_path: Path) -> None:
    lst = tmp_path / "list.csv"
    assert read_segment_list(lst) == []
    lst.write_text("seg_000000.mp4,0.000000,2.000000\nseg_000001.mp4,2.0,4.0\nseg_0000")
    listed = read_segment_list(lst)  # the half-written last line is not read
    assert listed == [
        ListedSegment("seg_000000.mp4", 0.0, 2.0),
        ListedSegment("seg_000001.mp4", 2.0, 4.0),
    ]
    files = ["seg_000000.mp4", "seg_000001.mp4"]
    assert [s.name for s in finished(listed, files, exited=False)] == ["seg_000000.mp4"]
    files.append("seg_000002.mp4")  # ffmpeg opened the next one: the listed are closed
    assert len(finished(listed, files, exited=False)) == 2
    assert len(finished(listed, files[:2], exited=True)) == 2


def test_ffmpeg_command_copies_never_transcodes(tmp_path: Path) -> None:
    url = "rtsp://u:p'w@h/s"
    source = write_source(tmp_path, url)
    cmd = ffmpeg_command("ffmpeg", source, tmp_path, 300, audio=False)
    assert cmd[cmd.index("-c") + 1] == "copy"
    assert not any(a.startswith(("-c:v", "-vcodec", "-c:a")) for a in cmd)
    assert cmd[cmd.index("-i") + 1] == str(source) and cmd[cmd.index("-f") + 1] == "concat"
    assert not any("p'w" in a or "rtsp://" in a for a in cmd)  # no URL on the command line
    script = source.read_text().splitlines()
    assert script[1] == "file 'rtsp://u:p'\\''w@h/s'"  # ffconcat quoting of the '
    assert "option rtsp_transport tcp" in script
    # ffmpeg gives up on the second timed-out read: 2 x 5 s = the 10 s default
    assert "option timeout 5000000" in script
    assert source.stat().st_mode & 0o777 == 0o600
    assert "0:a:0" not in cmd
    assert "0:a:0" in ffmpeg_command("ffmpeg", source, tmp_path, 300, audio=True)
    with pytest.raises(ValueError, match="control"):
        write_source(tmp_path, "rtsp://h/s\nfile '/etc/passwd'")


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def test_split_incomplete_fragment_keeps_whole_fragments(tmp_path: Path) -> None:
    head = _box(b"ftyp", b"isom") + _box(b"moov", b"m" * 20)
    frag = _box(b"moof", b"f" * 12) + _box(b"mdat", b"d" * 40)
    cut = _box(b"moof", b"f" * 12) + _box(b"mdat", b"d" * 40)[:30]  # killed mid-mdat
    path = tmp_path / "seg_000001.mp4"
    path.write_bytes(head + frag + cut)
    tail = split_incomplete_fragment(path)
    assert tail == tmp_path / "seg_000001.tail.mp4"
    assert path.read_bytes() == head + frag and tail.read_bytes() == cut  # no byte dropped
    assert split_incomplete_fragment(path) is None  # whole now
    only_header = tmp_path / "seg_000002.mp4"
    only_header.write_bytes(head + cut)  # no complete fragment: judged as it is
    assert split_incomplete_fragment(only_header) is None
    assert only_header.read_bytes() == head + cut


def test_run_state_round_trip_and_unreadable_state(tmp_path: Path) -> None:
    from camvault.recorder.salvage import RunState, read_state, write_state

    run_dir = tmp_path / "20261126T130000Z-abcd1234"
    run_dir.mkdir()
    assert read_state(run_dir) == RunState(run_dir.name)  # none yet: salvaged afresh
    state = RunState("r1", frozenset({"seg_000000.mp4"}), T0, 4242)
    write_state(run_dir, state)
    assert read_state(run_dir) == state
    (run_dir / "state.json").write_text('{"run_id": 7, "next_start": "yesterday"}')
    assert read_state(run_dir) == RunState("7")  # what is unreadable is left out
    (run_dir / "state.json").write_text("[1, 2")
    assert read_state(run_dir) == RunState(run_dir.name)

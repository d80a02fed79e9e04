"""Keyframes of a fragmented recording from its mfra (``export.randomaccess``): the same
answers as the PyAV probe over every offset, in a few small ranged reads, and None (the
caller probes) when the file has no usable mfra."""

from __future__ import annotations

import struct
from datetime import timedelta
from pathlib import Path

import pytest

from camvault.export.clip import Keyframes, Source
from camvault.export.media import probe_keyframes
from camvault.export.randomaccess import fragment_keyframes
from camvault.export.rangeindex import plan_indexed, read_indexes
from tests.splicing import T0, Store, recorder, source


def _rounded(k: Keyframes) -> tuple[float | None, float | None]:
    return tuple(None if t is None else round(t, 6) for t in (k.before, k.after))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    # 4 s segments, a keyframe every 2 s, a fragment every second: every other fragment
    # starts on a non-keyframe, so "the keyframe before" is often one fragment back
    return recorder(tmp_path_factory.mktemp("rec"), seconds=12.0)


def test_keyframes_equal_the_probes_at_every_offset(segments: list[Path]) -> None:
    store = Store()
    for n, path in enumerate(segments):
        src = source(store, n, path, T0 + timedelta(seconds=4 * n), 4.0)
        indexes = read_indexes(store, [src])
        assert indexes is not None and indexes[0].track.fragmented
        for tenth in range(0, 40, 3):
            offset = tenth / 10
            store.reads = 0
            got = fragment_keyframes(store, indexes[0], offset)
            assert got is not None
            assert _rounded(got) == _rounded(probe_keyframes(str(path), offset)[1]), offset
            assert store.reads <= 5, store.reads  # mfro, mfra, and a GOP's fragments


def test_no_mfra_means_no_answer(segments: list[Path]) -> None:
    # a segment cut short by a crash (salvaged after its last whole fragment) has none
    store = Store()
    data = segments[1].read_bytes()
    mfra = struct.unpack(">I", data[-4:])[0]
    store.objects["cut.mp4"] = data[:-mfra]
    src = Source(1, T0, T0 + timedelta(seconds=4), "", key="cut.mp4", size=len(data) - mfra)
    indexes = read_indexes(store, [src])
    assert indexes is not None
    assert fragment_keyframes(store, indexes[0], 1.5) is None


def test_a_tfra_that_disagrees_with_its_moofs_is_not_trusted(segments: list[Path]) -> None:
    store = Store()
    data = bytearray(segments[0].read_bytes())
    mfra = struct.unpack(">I", data[-4:])[0]
    at = len(data) - mfra + 8 + 8 + 16  # mfra header, tfra header, its fields: entry 0
    version = data[len(data) - mfra + 16]
    width = 8 if version == 1 else 4
    first = int.from_bytes(data[at : at + width], "big")
    data[at : at + width] = (first + 1).to_bytes(width, "big")  # entry 0's time, off by one
    store.objects["odd.mp4"] = bytes(data)
    src = Source(1, T0, T0 + timedelta(seconds=4), "", key="odd.mp4", size=len(data))
    indexes = read_indexes(store, [src])
    assert indexes is not None
    assert fragment_keyframes(store, indexes[0], 0.5) is None


def test_a_clip_starting_inside_a_fragmented_recording_needs_no_probe(
    segments: list[Path],
) -> None:
    store = Store()
    sources = [
        source(store, n, p, T0 + timedelta(seconds=4 * n), 4.0) for n, p in enumerate(segments)
    ]

    def probe(first: Source, offset: float) -> Keyframes:
        raise AssertionError("probed although the mfra says where the keyframes are")

    planned = plan_indexed(  # the recordings overlapping the range, as the caller picks them
        store, sources[1:], T0 + timedelta(seconds=5.3), T0 + timedelta(seconds=11),
        allowed_start=T0, probe=probe,
    )  # fmt: skip
    assert planned is not None
    plan, _ = planned
    assert plan.actual_start == T0 + timedelta(seconds=4)  # the keyframe at or before 5.3 s

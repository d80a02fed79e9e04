"""The one MP4 box walker shared by the ingest probe and the recorder's crash salvage."""

from __future__ import annotations

import io
from pathlib import Path

from camvault.mp4box import Box, walk


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def _walk(data: bytes) -> list[Box]:
    return list(walk(io.BytesIO(data), len(data)))


def test_whole_boxes_in_file_order() -> None:
    data = _box(b"ftyp", b"isom") + _box(b"moov", b"m" * 20) + _box(b"mdat", b"")
    assert _walk(data) == [Box(b"ftyp", 0, 12), Box(b"moov", 12, 28), Box(b"mdat", 40, 8)]
    assert _walk(data)[-1].end == len(data)
    assert _walk(b"") == []


def test_truncated_box_is_the_last_one_and_says_so() -> None:
    data = _box(b"ftyp", b"isom") + _box(b"mdat", b"d" * 40)[:30] + _box(b"free", b"")
    boxes = _walk(data)
    assert [b.kind for b in boxes] == [b"ftyp", b"mdat"]  # nothing read past the cut box
    assert boxes[-1] == Box(b"mdat", 12, 48, 8, "end")


def test_64_bit_size() -> None:
    payload = b"d" * 10
    big = (1).to_bytes(4, "big") + b"mdat" + (16 + len(payload)).to_bytes(8, "big") + payload
    data = _box(b"ftyp", b"isom") + big + _box(b"moov", b"")
    assert _walk(data) == [Box(b"ftyp", 0, 12), Box(b"mdat", 12, 26, 16), Box(b"moov", 38, 8)]
    # the file ends inside the 64-bit size field
    assert _walk(big[:12]) == [Box(b"mdat", 0, 0, 16, "header")]


def test_size_zero_extends_to_the_end_of_the_file() -> None:
    data = _box(b"ftyp", b"isom") + (0).to_bytes(4, "big") + b"mdat" + b"d" * 100
    assert _walk(data) == [Box(b"ftyp", 0, 12), Box(b"mdat", 12, 108)]
    assert _walk(data)[-1].end == len(data)


def test_cut_header_and_impossible_size() -> None:
    data = _box(b"ftyp", b"isom") + b"\x00\x00\x00"
    assert _walk(data)[-1] == Box(b"", 12, 0, fault="header")
    bad = (5).to_bytes(4, "big") + b"moov" + b"x" * 20  # smaller than its own header
    assert _walk(bad) == [Box(b"moov", 0, 5, 8, "size")]


def test_header_only_tells_a_killed_segments_stub_from_footage(tmp_path: Path) -> None:
    from camvault.recorder.salvage import header_only

    stub = tmp_path / "stub.mp4"
    header = _box(b"ftyp", b"isom\0\0\2\0") + _box(b"moov", b"\0" * 16)
    stub.write_bytes(header)
    assert header_only(stub)
    stub.write_bytes(header + _box(b"moof", b"\0" * 8) + _box(b"mdat", b"\1" * 32))
    assert not header_only(stub)  # a fragment: footage
    stub.write_bytes(header + _box(b"moof", b"\0" * 8)[:10])
    assert not header_only(stub)  # a cut-off fragment: kept for quarantine
    stub.write_bytes(header[:12])
    assert not header_only(stub)  # a cut-off header is not judged here
    stub.write_bytes(b"")
    assert not header_only(stub)

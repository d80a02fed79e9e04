"""StreamUpload: parts, digest, tee, bounded buffers, abort on failure (in-memory store);
parts sent from the tee file (the CLI) instead of memory buffers."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from camvault.errors import StorageUnavailable
from camvault.export.upload import (
    MB,
    MIN_PART,
    READ_BLOCK,
    FileRange,
    StreamUpload,
    abort_stale,
    part_size,
)


class FakeStore:
    bucket = "b"

    def __init__(self, fail_part: int | None = None, gate: threading.Event | None = None):
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.objects: dict[str, bytes] = {}
        self.fail_part = fail_part
        self.gate = gate
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def create_multipart(self, key: str, *, metadata: dict[str, str], content_type: str) -> str:
        uid = f"u{len(self.uploads)}"
        self.uploads[uid] = {}
        return uid

    def upload_part(self, key: str, upload_id: str, number: int, body: Any, crc32_b64: str) -> str:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.gate is not None:
                self.gate.wait(5)
            if number == self.fail_part:
                raise StorageUnavailable("part refused")
            data = _read_all(body) if isinstance(body, FileRange) else bytes(body)
            # what S3 does with the part's checksum: a wrong one stores nothing
            assert base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode() == crc32_b64
            self.uploads[upload_id][number] = data
            return f"e{number}"
        finally:
            with self._lock:
                self._in_flight -= 1

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[tuple[int, str, str]]
    ) -> str | None:
        got = self.uploads.pop(upload_id)
        assert [n for n, _, _ in parts] == sorted(got)
        self.objects[key] = b"".join(got[n] for n, _, _ in parts)
        return "AES256"

    def abort_multipart_upload(self, key: str, upload_id: str) -> bool:
        return self.uploads.pop(upload_id, None) is not None

    def list_multipart_uploads(self, prefix: str) -> Iterator[tuple[str, str, datetime]]:
        for uid in list(self.uploads):
            yield prefix, uid, datetime.now(UTC)


def _read_all(body: FileRange) -> bytes:
    """As botocore does: hash the body in blocks, seek back, send it in blocks."""
    start = body.tell()
    while body.read(1024 * 1024):
        pass
    body.seek(start)
    out = []
    while block := body.read(1024 * 1024):
        assert len(block) <= READ_BLOCK
        out.append(block)
    return b"".join(out)


def feed(up: StreamUpload, data: bytes, block: int = 300_000) -> None:
    """What render_stream does: read into space(), commit(n)."""
    pos = 0
    while pos < len(data):
        room = up.space()
        n = min(len(room), block, len(data) - pos)
        room[:n] = data[pos : pos + n]
        room.release()
        up.commit(n)
        pos += n


def test_parts_digest_and_tee() -> None:
    store = FakeStore()
    data = os.urandom(2 * MIN_PART + 12345)
    tee = io.BytesIO()
    up = StreamUpload(store, "k", metadata={}, tee=tee)
    feed(up, data)
    done = up.complete()
    assert store.objects["k"] == data == tee.getvalue()
    assert (done.size, done.sha256, done.sse) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
        "AES256",
    )
    assert store.uploads == {}


def test_empty_clip_is_one_empty_part() -> None:
    store = FakeStore()
    up = StreamUpload(store, "k", metadata={})
    assert up.complete().size == 0 and store.objects["k"] == b""


def test_part_failure_aborts_and_nothing_is_stored() -> None:
    store = FakeStore(fail_part=2)
    up = StreamUpload(store, "k", metadata={})
    with pytest.raises(StorageUnavailable):
        feed(up, os.urandom(5 * MIN_PART))
        up.complete()
    up.abort()
    assert store.objects == {} and store.uploads == {}


def test_buffers_are_bounded_by_concurrency() -> None:
    """With parts stuck in flight the producer blocks after concurrency + 1 buffers."""
    gate = threading.Event()
    store = FakeStore(gate=gate)
    up = StreamUpload(store, "k", metadata={}, concurrency=2)
    t = threading.Thread(target=feed, args=(up, bytes(6 * MIN_PART)))
    t.start()
    t.join(1.0)
    assert t.is_alive()  # blocked: 2 parts in flight, the third buffer full
    assert up._allocated == 3
    gate.set()
    t.join(10)
    assert not t.is_alive()
    up.complete()
    assert len(store.objects["k"]) == 6 * MIN_PART and store.max_in_flight <= 2


def test_abort_stale_removes_a_dead_workers_upload() -> None:
    store = FakeStore()
    StreamUpload(store, "k", metadata={})  # its process was killed
    assert abort_stale(store, "k") == 1 and store.uploads == {}


def test_part_size_keeps_within_s3_part_limit() -> None:
    assert part_size(1800 * MB) == MIN_PART
    big = 200_000 * MB
    assert part_size(big) * 9_999 >= big * 1.5 and part_size(big) % MB == 0


def test_parts_from_the_tee_file(tmp_path: Path) -> None:
    """The CLI's mode: every part is read back from the output file, with the CRC32
    computed as it was written; only the 1 MiB landing buffer is held."""
    store = FakeStore()
    data = os.urandom(3 * MIN_PART + 777)
    with (tmp_path / "clip.part").open("w+b") as tee:
        up = StreamUpload(store, "k", metadata={}, tee=tee, parts_from_tee=True)
        feed(up, data, block=700_000)  # blocks straddle the part boundaries
        done = up.complete()
    assert store.objects["k"] == data == (tmp_path / "clip.part").read_bytes()
    assert (done.size, done.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert up._allocated == 0 and len(up._buf) == MB  # no part buffers


def test_empty_clip_from_the_tee_file(tmp_path: Path) -> None:
    store = FakeStore()
    with (tmp_path / "clip.part").open("w+b") as tee:
        up = StreamUpload(store, "k", metadata={}, tee=tee, parts_from_tee=True)
        assert up.complete().size == 0 and store.objects["k"] == b""


def test_parts_from_the_tee_file_are_bounded_by_concurrency(tmp_path: Path) -> None:
    gate = threading.Event()
    store = FakeStore(gate=gate)
    with (tmp_path / "clip.part").open("w+b") as tee:
        up = StreamUpload(store, "k", metadata={}, tee=tee, parts_from_tee=True)
        t = threading.Thread(target=feed, args=(up, bytes(5 * MIN_PART)))
        t.start()
        t.join(1.0)
        assert t.is_alive()  # the writer waits: 2 parts in flight, a third one full
        assert tee.tell() == 3 * MIN_PART
        gate.set()
        t.join(10)
        assert not t.is_alive()
        up.complete()
    assert len(store.objects["k"]) == 5 * MIN_PART and store.max_in_flight <= 2


def test_a_failed_part_from_the_tee_file_aborts(tmp_path: Path) -> None:
    store = FakeStore(fail_part=2)
    with (tmp_path / "clip.part").open("w+b") as tee:
        up = StreamUpload(store, "k", metadata={}, tee=tee, parts_from_tee=True)
        with pytest.raises(StorageUnavailable):
            feed(up, os.urandom(5 * MIN_PART))
            up.complete()
    up.abort()
    assert store.objects == {} and store.uploads == {}


def test_file_range_reads_only_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 1024)
    fd = os.open(path, os.O_RDONLY)
    try:
        r = FileRange(fd, 1000, 200_000)
        assert len(r) == 200_000 and r.read(10) == (bytes(range(256)) * 1024)[1000:1010]
        assert r.seek(0, io.SEEK_END) == 200_000 and r.read() == b""
        r.seek(0)
        assert _read_all(r) == (bytes(range(256)) * 1024)[1000:201_000]
    finally:
        os.close(fd)

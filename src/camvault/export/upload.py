"""An export's bytes, hashed and uploaded as ffmpeg produces them.

ffmpeg writes the clip (fragmented MP4) to a pipe; every block is read from it straight
into the current part of a multipart upload, added to the clip's SHA-256 and optionally
copied to a local file (the CLI's output). A full part goes to S3 on a small thread pool
while the next one fills; at most ``concurrency`` parts are in flight, and the writer
blocks (so ffmpeg blocks on its pipe) until one finishes: memory stays at about
``(concurrency + 1) * part_size`` whatever the clip's length, and no byte is read twice.

Never a partial object: the upload is completed only by ``complete()`` (after ffmpeg
exited cleanly); any failure, and ``abort()``, abort it. A process killed mid-upload
leaves an incomplete upload, which the next worker to take the job aborts
(``abort_stale``) before starting its own — and the bucket's abort-incomplete rule and
the multipart sweeper are the backstop.
"""

from __future__ import annotations

import base64
import hashlib
import queue
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

MB = 1024 * 1024
MIN_PART = 5 * MB  # S3's minimum: the smallest buffers that still make a valid upload
MAX_PARTS = 10_000  # S3's limit


class PartStore(Protocol):
    """The multipart calls an export's upload needs (``BotoObjectStore`` and the twin have
    them): each raises the S3 boundary's errors; ``abort_multipart_upload`` is safe to repeat."""

    bucket: str

    def create_multipart(self, key: str, *, metadata: dict[str, str], content_type: str) -> str: ...
    def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes | bytearray, crc32_b64: str
    ) -> str: ...
    def complete_multipart(
        self, key: str, upload_id: str, parts: list[tuple[int, str, str]]
    ) -> str | None: ...
    def abort_multipart_upload(self, key: str, upload_id: str) -> bool: ...
    def list_multipart_uploads(self, prefix: str) -> Iterator[tuple[str, str, datetime]]: ...


@dataclass(frozen=True, slots=True)
class Uploaded:
    """A completed export object: its size, SHA-256 and the SSE S3 reported."""

    size: int
    sha256: str  # hex, of the whole object
    sse: str | None


def part_size(expected_bytes: int) -> int:
    """Parts of at least 5 MiB, large enough that a clip of ``expected_bytes`` (+50 %)
    stays within S3's 10,000 parts."""
    need = -(-int(expected_bytes * 1.5) // (MAX_PARTS - 1))
    return max(MIN_PART, -(-need // MB) * MB)


def _crc_b64(data: bytes | bytearray) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


class StreamUpload:
    """One multipart upload fed by ``space``/``commit`` (the producer reads straight into
    the part being filled: no per-block bytes objects, no join); see the module docstring.

    The part buffers are a fixed pool of ``concurrency + 1`` bytearrays, reused: memory
    does not grow with the clip, and the allocator never fragments."""

    def __init__(
        self,
        store: PartStore,
        key: str,
        *,
        metadata: dict[str, str],
        content_type: str = "video/mp4",
        part_bytes: int = MIN_PART,
        concurrency: int = 2,
        tee: BinaryIO | None = None,
    ) -> None:
        self._store = store
        self.key = key
        self._part_bytes = part_bytes
        self._tee = tee
        self._sha = hashlib.sha256()
        self._size = 0
        self._free: queue.Queue[bytearray] = queue.Queue()
        self._allocated = 0
        self._max_buffers = concurrency + 1
        self._buf = self._take()
        self._view = memoryview(self._buf)
        self._pos = 0
        self._parts: list[Future[tuple[int, str, str]]] = []
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="export-part")
        self.upload_id = store.create_multipart(key, metadata=metadata, content_type=content_type)
        self._open = True

    def _take(self) -> bytearray:
        """A free part buffer; blocks (backpressure on ffmpeg) while all are in flight."""
        if self._free.empty() and self._allocated < self._max_buffers:
            self._allocated += 1
            return bytearray(self._part_bytes)
        while True:
            try:
                return self._free.get(timeout=1.0)
            except queue.Empty:
                self._raise_failed()

    def _raise_failed(self) -> None:
        for f in self._parts:  # a part that failed stops the stream now
            if f.done() and f.exception() is not None:
                f.result()

    def space(self) -> memoryview:
        """Where the next bytes go: the rest of the current part (never empty)."""
        return self._view[self._pos :]

    def commit(self, n: int) -> None:
        """``n`` bytes were written at the start of ``space()``."""
        block = self._view[self._pos : self._pos + n]
        self._sha.update(block)
        if self._tee is not None:
            self._tee.write(block)
        self._pos += n
        self._size += n
        if self._pos == self._part_bytes:
            self._submit(self._buf)
            self._raise_failed()
            self._view.release()
            self._buf = self._take()
            self._view = memoryview(self._buf)
            self._pos = 0

    def _submit(self, body: bytearray) -> None:
        number = len(self._parts) + 1
        self._parts.append(self._pool.submit(self._send, number, body))

    def _send(self, number: int, body: bytearray) -> tuple[int, str, str]:
        try:
            crc = _crc_b64(body)
            etag = self._store.upload_part(self.key, self.upload_id, number, body, crc)
            return number, etag, crc
        finally:
            if len(body) == self._part_bytes:
                self._free.put(body)

    def complete(self) -> Uploaded:
        """The last part, then the object: whole, or (on any error) aborted."""
        try:
            if self._pos or not self._parts:
                # the last part may be small (or empty: an empty clip)
                self._submit(bytearray(self._view[: self._pos]))
            self._view.release()
            parts = [f.result() for f in self._parts]
            sse = self._store.complete_multipart(self.key, self.upload_id, parts)
        except BaseException:
            self.abort()
            raise
        self._open = False
        self._pool.shutdown()
        return Uploaded(self._size, self._sha.hexdigest(), sse)

    def abort(self) -> None:
        """Stop: wait for parts in flight, then abort the upload (nothing is stored)."""
        if not self._open:
            return
        self._open = False
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._store.abort_multipart_upload(self.key, self.upload_id)


def abort_stale(store: PartStore, key: str) -> int:
    """Abort every incomplete upload of exactly ``key`` (what a killed worker left);
    returns how many."""
    n = 0
    for k, upload_id, _ in list(store.list_multipart_uploads(key)):
        if k == key and store.abort_multipart_upload(k, upload_id):
            n += 1
    return n

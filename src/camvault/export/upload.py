"""An export's bytes, hashed and uploaded as ffmpeg produces them.

ffmpeg writes the clip (fragmented MP4) to a pipe; every block is read from it straight
into the current part of a multipart upload, added to the clip's SHA-256 and optionally
copied to a local file (the CLI's output). A full part goes to S3 on a small thread pool
while the next one fills; at most ``concurrency`` parts are in flight, and the writer
blocks (so ffmpeg blocks on its pipe) until one finishes: memory stays at about
``(concurrency + 1) * part_size`` whatever the clip's length, and no byte is read twice.

Sent from the output file instead (``parts_from_tee``, the CLI): the clip is written to
``tee`` as it comes, and each full part is sent from that file's range (the page cache,
read back with ``pread`` while the next part is written) — the only buffer is one 1 MiB
landing block, not ``concurrency + 1`` parts (15 MiB at the minimum part size): what
keeps ``camvault export`` and its ffmpeg within 100 MB.

Never a partial object: the upload is completed only by ``complete()`` (after ffmpeg
exited cleanly); any failure, and ``abort()``, abort it. A process killed mid-upload
leaves an incomplete upload, which the next worker to take the job aborts
(``abort_stale``) before starting its own — and the bucket's abort-incomplete rule and
the multipart sweeper are the backstop.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import queue
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol, Union

MB = 1024 * 1024
MIN_PART = 5 * MB  # S3's minimum: the smallest buffers that still make a valid upload
MAX_PARTS = 10_000  # S3's limit
LANDING = 1 * MB  # ffmpeg's pipe is enlarged to this (media._PIPE_BYTES)
# a staged part is read back at most this much at a time: botocore asks for 1 MiB blocks
# (payload hash), and every sender thread's malloc arena would keep such a block resident
READ_BLOCK = 64 * 1024


class FileRange:
    """A part's bytes as a file-like body (``read``/``seek``/``tell``, what botocore sends
    and hashes in blocks): ``length`` bytes of the file ``fd`` from ``start``, read with
    ``pread`` (no file position shared with the writer or the other parts in flight)."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        self._fd, self._start, self._len = fd, start, length
        self._pos = 0

    def __len__(self) -> int:
        return self._len

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (at most ``READ_BLOCK``: fewer is a valid answer; b"" only
        at the end)."""
        left = self._len - self._pos
        n = min(READ_BLOCK, left if size is None or size < 0 else min(size, left))
        data = os.pread(self._fd, n, self._start + self._pos) if n > 0 else b""
        if len(data) != n:
            raise OSError(f"staged part: {n} bytes expected, {len(data)} read")
        self._pos += n
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._len}[whence]
        self._pos = min(max(0, base + offset), self._len)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


PartBody = Union[bytes, bytearray, FileRange]  # noqa: UP007 (an alias, evaluated at runtime)


class PartStore(Protocol):
    """The multipart calls an export's upload needs (``BotoObjectStore`` and the twin have
    them): each raises the S3 boundary's errors; ``abort_multipart_upload`` is safe to repeat."""

    bucket: str

    def create_multipart(self, key: str, *, metadata: dict[str, str], content_type: str) -> str: ...
    def upload_part(
        self, key: str, upload_id: str, number: int, body: PartBody, crc32_b64: str
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
    return _b64(zlib.crc32(data))


def _b64(crc: int) -> str:
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


class StreamUpload:
    """One multipart upload fed by ``space``/``commit`` (the producer reads straight into
    the part being filled: no per-block bytes objects, no join); see the module docstring.

    The part buffers are a fixed pool of ``concurrency + 1`` bytearrays, reused: memory
    does not grow with the clip, and the allocator never fragments. With
    ``parts_from_tee`` (``tee`` then a file open for reading and writing) there is one
    small landing buffer instead, and the parts are sent from ``tee``."""

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
        parts_from_tee: bool = False,
    ) -> None:
        if parts_from_tee and tee is None:
            raise ValueError("parts_from_tee needs a tee file")
        self._store = store
        self.key = key
        self._part_bytes = part_bytes
        self._tee = tee
        self._staged = parts_from_tee
        self._sha = hashlib.sha256()
        self._size = 0
        self._free: queue.Queue[bytearray] = queue.Queue()
        self._allocated = 0
        self._max_buffers = concurrency + 1
        # staged: parts in flight (the writer waits for a slot), where the current part
        # starts in the file, and its CRC32 so far (computed as written: no second read)
        self._slots = threading.Semaphore(concurrency)
        self._part_start = 0
        self._crc = 0
        self._buf = bytearray(min(LANDING, part_bytes)) if parts_from_tee else self._take()
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
        if self._staged:  # the landing buffer, up to the part's end
            return self._view[: self._part_bytes - (self._size - self._part_start)]
        return self._view[self._pos :]

    def commit(self, n: int) -> None:
        """``n`` bytes were written at the start of ``space()``."""
        if self._staged:
            self._commit_staged(n)
            return
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

    def _commit_staged(self, n: int) -> None:
        assert self._tee is not None
        block = self._view[:n]
        self._sha.update(block)
        self._crc = zlib.crc32(block, self._crc)
        self._tee.write(block)
        self._size += n
        if self._size - self._part_start == self._part_bytes:
            self._submit_range()

    def _submit_range(self) -> None:
        """The part written since ``_part_start``, once a slot is free (backpressure)."""
        assert self._tee is not None
        self._tee.flush()  # the sender reads the file, not this process's buffer
        while not self._slots.acquire(timeout=1.0):
            self._raise_failed()
        body = FileRange(self._tee.fileno(), self._part_start, self._size - self._part_start)
        number = len(self._parts) + 1
        self._parts.append(self._pool.submit(self._send, number, body, _b64(self._crc)))
        self._part_start, self._crc = self._size, 0
        self._raise_failed()

    def _submit(self, body: bytearray) -> None:
        number = len(self._parts) + 1
        self._parts.append(self._pool.submit(self._send, number, body))

    def _send(self, number: int, body: PartBody, crc: str | None = None) -> tuple[int, str, str]:
        try:
            if crc is None:
                assert not isinstance(body, FileRange)
                crc = _crc_b64(body)
            etag = self._store.upload_part(self.key, self.upload_id, number, body, crc)
            return number, etag, crc
        finally:
            if isinstance(body, FileRange):
                self._slots.release()
            elif isinstance(body, bytearray) and len(body) == self._part_bytes:
                self._free.put(body)

    def complete(self) -> Uploaded:
        """The last part, then the object: whole, or (on any error) aborted."""
        try:
            if self._staged and (self._size > self._part_start or not self._parts):
                self._submit_range()  # the last part, small or empty (an empty clip)
            elif not self._staged and (self._pos or not self._parts):
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

"""The clip splice's reading and writing (``export.splice``): ``Cursor`` reads one
recording forward in large ranged GETs, one ahead on a thread, reusing its buffers;
``Chunks`` gathers the output into fixed-size pieces for the response or the upload."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from camvault.errors import InvalidMedia
from camvault.export.feed import RangeReader
from camvault.export.rangeindex import read_range

__all__ = ["Chunks", "Cursor"]


class Chunks:
    """Output gathered into fresh ``size``-byte buffers (the server may still hold the
    last one unsent): one copy of every byte, and one thread hop per chunk."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._buf = bytearray(size)
        self._n = 0
        self._done: list[memoryview] = []
        self.written = 0  # bytes put so far

    def put(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self.written += len(view)
        while view:
            k = min(len(view), self._size - self._n)
            self._buf[self._n : self._n + k] = view[:k]
            self._n += k
            view = view[k:]
            if self._n == self._size:
                self._done.append(memoryview(self._buf))
                self._buf = bytearray(self._size)
                self._n = 0

    def full(self) -> list[memoryview]:
        done, self._done = self._done, []
        return done

    def rest(self) -> list[memoryview]:
        done = self.full()
        if self._n:
            done.append(memoryview(self._buf)[: self._n])
            self._buf = bytearray(self._size)
            self._n = 0
        return done


class Cursor:
    """Reads one object forward in ``part``-byte ranged GETs between ``start`` and
    ``end``, one GET ahead on ``pool``; ``then`` (the next object's ``prime``) runs once
    this one has nothing left to fetch ahead, so its first GET overlaps this one's last.
    A buffer goes back to ``spare`` once the cursor has moved past it: whatever
    ``pieces`` yields must be copied before the next call."""

    def __init__(
        self,
        store: RangeReader,
        key: str,
        start: int,
        end: int,
        part: int,
        pool: ThreadPoolExecutor,
        spare: list[bytearray],
    ) -> None:
        self._store = store
        self._spare = spare  # part-sized buffers free for the next GET (shared)
        self._key = key
        self._start = start
        self._end = end
        self._part = part
        self._pool = pool
        self._lo = 0
        self._buf = memoryview(b"")
        self._next: Future[tuple[int, memoryview]] | None = None
        self.then: Callable[[], None] | None = None

    def prime(self) -> None:
        if self._next is None and self._start < self._end:
            self._next = self._pool.submit(self._get, self._start)

    def read(self, offset: int, n: int) -> bytes:
        # each piece copied as it comes: the buffer under it is reused once passed
        return b"".join(bytes(p) for p in self.pieces(offset, n))

    def pieces(self, offset: int, n: int) -> Iterator[memoryview]:
        """``n`` bytes from ``offset`` as views of the GET buffers (valid until the next
        call)."""
        while n > 0:
            if not self._lo <= offset < self._lo + len(self._buf):
                self._load(offset)
            at = offset - self._lo
            k = min(n, len(self._buf) - at)
            yield self._buf[at : at + k]
            offset += k
            n -= k

    def _load(self, offset: int) -> None:
        got = None
        if self._next is not None:
            got, self._next = self._next.result(), None
            if not got[0] <= offset < got[0] + len(got[1]):
                self._recycle(got[1])
                got = None  # a jump past what was fetched ahead
        lo, buf = got if got is not None else self._get(offset)
        if not lo <= offset < lo + len(buf):
            raise InvalidMedia(f"recording {self._key} is shorter than its index says")
        done, (self._lo, self._buf) = self._buf, (lo, buf)
        self._recycle(done)
        ahead = lo + len(buf)
        if ahead < self._end:
            self._next = self._pool.submit(self._get, ahead)
        elif self.then is not None:
            self.then()
            self.then = None

    def close(self) -> None:
        """Done with this object: its buffers go back to ``spare`` (a finished cursor
        kept its last one: 4 MB per recording of the clip, 48 MB at the peak of 1 h)."""
        self._recycle(self._buf)
        self._buf = memoryview(b"")
        if self._next is not None:  # read ahead past the entry's end: back when it lands
            self._next.add_done_callback(
                lambda f: None if f.exception() is not None else self._recycle(f.result()[1])
            )
            self._next = None

    def _recycle(self, done: memoryview) -> None:
        if isinstance(done.obj, bytearray) and len(done.obj) == self._part:
            self._spare.append(done.obj)  # its pieces were copied out: fill it again

    def _get(self, offset: int) -> tuple[int, memoryview]:
        size = max(1, min(self._part, self._end - offset))
        try:
            whole = self._spare.pop()
        except IndexError:
            whole = bytearray(self._part)
        buf = memoryview(whole)[:size]
        return offset, buf[: read_range(self._store, self._key, offset, buf)[0]]

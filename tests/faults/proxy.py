"""A fault-injecting TCP proxy for the fault tests: real sockets, real cuts.

Put it between a client (boto3, psycopg, the Lambda sink) and a server; then

* ``proxy.mode = "pass"``    forward both ways (default);
* ``proxy.mode = "refuse"``  accept and reset at once (the server is "down"): each
  connection attempt is timestamped in ``proxy.accepts``, which is how the tests measure
  the retry schedule from the outside;
* ``proxy.mode = "stall"``   accept, swallow what the client sends, never answer;
* ``proxy.cut_after(n)``     forward until ``n`` more client→server bytes have passed (over
  all connections), then reset every connection and switch to ``refuse``;
  ``cut_after(n, times=k, then="pass")`` does that ``k`` times (a fresh budget of ``n``
  after each cut), forwarding between and after the cuts;
* ``proxy.cut_all()``        reset every live connection now.

``record=True`` keeps each connection's client→server bytes in ``proxy.captured`` (the
Lambda test reads the Invoke request off the wire).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from types import TracebackType
from typing import Self

_LINGER_RST = struct.pack("ii", 1, 0)  # close() sends RST instead of FIN


def _reset(sock: socket.socket) -> None:
    # close() alone does not wake a thread blocked in recv() on the socket (a stalled
    # connection's swallower), and the RST only goes out once that recv returns
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], *, record: bool = False) -> None:
        self.upstream = upstream
        self.record = record
        self.mode = "pass"
        self.accepts: list[tuple[float, str]] = []  # (monotonic time, mode at accept)
        self.captured: list[bytearray] = []
        self._budget: int | None = None
        self._cut_size = 0
        self._cuts_left = 0
        self._then = "refuse"
        self.cuts = 0  # cuts made by cut_after
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut_all()
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # faults ------------------------------------------------------------------------------
    def cut_after(self, n: int, *, times: int = 1, then: str = "refuse") -> None:
        with self._lock:
            self._budget = n
            self._cut_size, self._cuts_left, self._then = n, times, then
            self.mode = "pass"

    def cut_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            _reset(c)

    def restore(self) -> None:
        with self._lock:
            self._budget = None
            self.mode = "pass"

    def attempts(self, mode: str | None = None) -> list[float]:
        return [t for t, m in self.accepts if mode is None or m == mode]

    # plumbing ----------------------------------------------------------------------------
    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            mode = self.mode
            self.accepts.append((time.monotonic(), mode))
            if mode == "refuse":
                _reset(client)
                continue
            with self._lock:
                self._conns.add(client)
            if mode == "stall":
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns.add(upstream)
            buf: bytearray | None = None
            if self.record:
                buf = bytearray()
                self.captured.append(buf)
            threading.Thread(
                target=self._pump, args=(client, upstream, buf, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, None, False), daemon=True
            ).start()

    def _swallow(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while client.recv(65536):
                pass

    def _pump(
        self, src: socket.socket, dst: socket.socket, buf: bytearray | None, counted: bool
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if counted:
                    data, cut = self._spend(data)
                    if buf is not None:
                        buf.extend(data)
                    if data:
                        dst.sendall(data)
                    if cut:
                        self.cut_all()
                        return
                else:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            # half-close propagation is enough for HTTP; a reset side stays reset
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def _spend(self, data: bytes) -> tuple[bytes, bool]:
        with self._lock:
            if self._budget is None:
                return data, False
            if len(data) < self._budget:
                self._budget -= len(data)
                return data, False
            keep = data[: self._budget]
            self.cuts += 1
            self._cuts_left -= 1
            if self._cuts_left > 0:
                self._budget = self._cut_size
            else:
                self._budget = None
                self.mode = self._then
            return keep, True

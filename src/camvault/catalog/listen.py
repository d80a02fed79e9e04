"""PostgreSQL LISTEN/NOTIFY: wake-ups between processes, through the database they share.

A listening session must stay the same connection, so ``Listener`` owns one of its own
(never a pooled one). It is a latency aid only — whoever listens must also poll: a
notification sent while the connection was down is simply lost. psycopg errors leave as
``CatalogUnavailable`` (``connector.translate``), as everywhere else.
"""

from __future__ import annotations

import contextlib

import psycopg
from psycopg import sql

from camvault.catalog.connector import translate
from camvault.errors import CatalogUnavailable

__all__ = ["Listener"]


class Listener:
    """``wait(timeout)`` returns the payloads notified on ``channel`` (connecting, and
    LISTENing, on first use and again after a failure)."""

    def __init__(
        self,
        url: str,
        channel: str,
        *,
        connect_timeout: float = 5.0,
        application_name: str = "camvault-listen",
    ) -> None:
        self._url = url
        self._channel = channel
        self._connect_timeout = max(1, round(connect_timeout))
        self._application_name = application_name
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        conn = psycopg.connect(
            self._url,
            autocommit=True,
            connect_timeout=self._connect_timeout,
            application_name=self._application_name,
            # a cut connection is noticed instead of waiting on it forever
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except BaseException:
            conn.close()
            raise
        return conn

    def wait(self, timeout: float) -> list[str]:
        """Payloads received within ``timeout`` seconds (returns at the first one)."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            return [n.payload for n in self._conn.notifies(timeout=timeout, stop_after=1)]
        except psycopg.Error as exc:
            self.close()
            err = translate(exc)
            if not isinstance(err, CatalogUnavailable):
                err = CatalogUnavailable(str(err))
            raise err from exc
        except OSError as exc:  # e.g. the socket went away under select()
            self.close()
            raise CatalogUnavailable(f"PostgreSQL listener: {exc}") from exc

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):  # broken: nothing to release
                conn.close()

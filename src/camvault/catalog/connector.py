"""The one boundary between camvault and PostgreSQL.

``Connector`` is the narrow interface the catalog needs; ``PsycopgConnector`` is the real
implementation on a psycopg 3 connection pool. psycopg and pool errors are translated here
into ``CatalogUnavailable`` (retry later) — callers never see psycopg types. Integrity
errors pass through as ``IntegrityViolation`` carrying the SQLSTATE, so callers branch on
codes, not on message text.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, cast

from camvault.errors import CamvaultError, CatalogUnavailable, InputError, IntegrityViolation

if TYPE_CHECKING:  # imported on first use: psycopg + its pool take ~0.07 s to import
    import psycopg
    import psycopg_pool

Row = dict[str, Any]
Params = Mapping[str, Any]

# SQLSTATE classes: 08 connection exception, 57P0x operator intervention (shutdown),
# 53 insufficient resources, 40 transaction rollback (serialization/deadlock: retryable).
_UNAVAILABLE_PREFIXES = ("08", "53", "57P", "40", "58")


class Session(Protocol):
    """Statements run on one connection, inside one transaction. Rows are dicts by column
    name; parameters are psycopg's named ``%(name)s`` form; errors leave as camvault errors
    (``CatalogUnavailable``, ``IntegrityViolation`` with its SQLSTATE, ``InputError``)."""

    def execute(self, sql: str, params: Params | None = None) -> None: ...
    def fetchone(self, sql: str, params: Params | None = None) -> Row | None: ...
    def fetchall(self, sql: str, params: Params | None = None) -> list[Row]: ...


class Connector(Protocol):
    """The catalog's only way to PostgreSQL: transactions, nothing else. psycopg errors are
    translated (``translate``) when they leave, so callers never see a psycopg type."""

    def transaction(self, *, acting_user: int | None = None) -> Any:
        """Context manager yielding a ``Session``; commits on success, rolls back on error.

        ``acting_user`` is set transaction-locally (``set_config(..., true)``) for row-level
        security; it never leaks to the next user of the pooled connection.
        """

    def close(self) -> None: ...


def translate(exc: psycopg.Error) -> CamvaultError:
    import psycopg  # loaded already: ``exc`` is one of its errors

    state = exc.sqlstate or ""
    if isinstance(exc, psycopg.OperationalError) and (
        not state or state.startswith(_UNAVAILABLE_PREFIXES)
    ):
        return CatalogUnavailable(f"PostgreSQL unavailable: {_first_line(exc)}")
    if state.startswith(_UNAVAILABLE_PREFIXES):
        return CatalogUnavailable(f"PostgreSQL unavailable ({state}): {_first_line(exc)}")
    if isinstance(exc, psycopg.errors.IntegrityError):
        return IntegrityViolation(_first_line(exc), state)
    if state.startswith("22"):  # data exception: bad input value
        return InputError(f"invalid value: {_first_line(exc)}")
    if isinstance(exc, psycopg.InterfaceError):
        return CatalogUnavailable(f"PostgreSQL connection lost: {_first_line(exc)}")
    return CamvaultError(f"catalog error ({state or type(exc).__name__}): {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _PsycopgSession:
    def __init__(self, conn: psycopg.Connection[Row]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params | None = None) -> None:
        self._conn.execute(sql, params)

    def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        return self._conn.execute(sql, params).fetchone()

    def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()


# psycopg prepares a statement run 5 times; PostgreSQL may then settle on a generic plan,
# and for the RLS listing over month partitions that one measured ~2x slower at p99
# (bench/catalog_query.py: 24 h p99 9.0 vs 4.4 ms). Planning each call costs ~0.2 ms.
PLAN_CACHE_OPTION = "-c plan_cache_mode=force_custom_plan"


class PsycopgConnector:
    """``Connector`` on a psycopg 3 pool; psycopg errors leave as camvault errors.

    The pool (and psycopg itself) is set up when the catalog is first used, not here:
    `ingest --upload` and `upload --once` start their first PUT before they need the
    catalog, and psycopg's import (~0.07 s of CPU) would otherwise come first."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        connect_timeout: float = 5.0,
        statement_timeout_ms: int = 15_000,
        application_name: str = "camvault",
    ) -> None:
        options = f"-c statement_timeout={statement_timeout_ms} {PLAN_CACHE_OPTION}"
        self._url = url
        self._sizes = (min_size, max_size)
        self._timeout = connect_timeout
        self._kwargs: dict[str, Any] = {
            "connect_timeout": max(1, round(connect_timeout)),
            "application_name": application_name,
            "options": options,
            # TCP keepalives so a cut connection is noticed instead of hanging forever
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._closed = False
        self._lock = threading.Lock()

    def _get_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        with self._lock:
            if self._pool is None:
                if self._closed:
                    raise CatalogUnavailable("PostgreSQL unavailable: the connector is closed")
                import psycopg_pool
                from psycopg.rows import dict_row

                pool = psycopg_pool.ConnectionPool(
                    self._url,
                    min_size=self._sizes[0],
                    max_size=self._sizes[1],
                    kwargs={**self._kwargs, "row_factory": dict_row},
                    timeout=self._timeout,
                    open=False,
                    # a connection that broke while idle in the pool is replaced, not handed out
                    check=psycopg_pool.ConnectionPool.check_connection,
                )
                pool.open(wait=False)
                self._pool = pool
            return self._pool

    @contextmanager
    def transaction(self, *, acting_user: int | None = None) -> Iterator[_PsycopgSession]:
        pool = self._get_pool()
        import psycopg  # loaded with the pool
        import psycopg_pool

        try:
            with pool.connection() as conn, conn.transaction():
                if acting_user is not None:
                    conn.execute(
                        "SELECT set_config('camvault.user_id', %s, true)", (str(acting_user),)
                    )
                yield _PsycopgSession(cast("psycopg.Connection[Row]", conn))
        except psycopg_pool.PoolTimeout as exc:
            raise CatalogUnavailable(f"PostgreSQL unavailable: {exc}") from exc
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool = self._pool
        if pool is not None:
            pool.close()

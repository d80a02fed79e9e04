"""``Catalog``: cameras, recordings and upload errors — the reads and writes the pipeline,
reconciler and CLI make to PostgreSQL, by name (imported as ``camvault.catalog.Catalog``).

Pure translation between domain objects and named queries; all I/O goes through the
``Connector`` passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from camvault.catalog.connector import Connector, Row
from camvault.catalog.queries import query
from camvault.errors import IntegrityViolation, RecordingConflict, UnknownCamera
from camvault.models import Camera, Recording

if TYPE_CHECKING:
    from camvault.lifecycle import Expected

_FOREIGN_KEY_VIOLATION = "23503"
ExpectFn = Callable[[Recording], "Expected | None"]


def _camera(row: Row) -> Camera:
    return Camera(
        id=row["id"],
        name=row["name"],
        segment_seconds=row["segment_seconds"],
        enabled=row["enabled"],
        created_at=row["created_at"],
    )


def recording_from_row(row: Row) -> Recording:
    return Recording(
        id=row["id"],
        camera_id=row["camera_id"],
        start_time=row["start_time"].astimezone(UTC),
        end_time=row["end_time"].astimezone(UTC),
        duration_seconds=row["duration_seconds"],
        s3_bucket=row["s3_bucket"],
        s3_key=row["s3_key"],
        size_bytes=row["size_bytes"],
        checksum_algorithm=row["checksum_algorithm"],
        checksum=row["checksum"],
        codec=row["codec"],
        width=row["width"],
        height=row["height"],
        storage_class=row["storage_class"],
        sse=row["sse"],
        etag=row["etag"],
        run_id=row["run_id"],
        created_at=row["created_at"],
        node_id=row.get("node_id"),
    )


def _same_object(a: Recording, b: Recording) -> bool:
    return (a.s3_bucket, a.s3_key, a.checksum) == (b.s3_bucket, b.s3_key, b.checksum)


class Catalog:
    """Cameras, recordings and upload errors on a ``Connector``. ``commit_recording`` is
    idempotent: the same object again is a no-op, a different one at the same (camera, start) is
    ``RecordingConflict``."""

    def __init__(
        self, connector: Connector, *, expect: ExpectFn | None = None, node: str | None = None
    ) -> None:
        """``expect(recording)`` tells what the lifecycle rules will do to its object
        (class, archive date, expiry), stored with the row at commit. ``node``: the node
        whose spool the segments come from, for rows that do not name one."""
        self._db = connector
        self._node = node
        self._expect = expect
        self._partitions: set[tuple[int, int]] = set()

    # cameras -------------------------------------------------------------------------
    def upsert_camera(
        self,
        camera_id: str,
        name: str = "",
        segment_seconds: int | None = None,
        enabled: bool = True,
    ) -> Camera:
        params = {
            "id": camera_id,
            "name": name,
            "segment_seconds": segment_seconds,
            "enabled": enabled,
        }
        with self._db.transaction() as s:
            row = s.fetchone(query("upsert_camera"), params)
        assert row is not None
        return _camera(row)

    def get_camera(self, camera_id: str) -> Camera | None:
        with self._db.transaction() as s:
            row = s.fetchone(query("get_camera"), {"id": camera_id})
        return None if row is None else _camera(row)

    def list_cameras(self) -> list[Camera]:
        with self._db.transaction() as s:
            return [_camera(r) for r in s.fetchall(query("list_cameras"))]

    # recordings ------------------------------------------------------------------------
    def ensure_partitions(self, months_back: int = 1, months_ahead: int = 3) -> list[str]:
        with self._db.transaction() as s:
            rows = s.fetchall(
                query("ensure_partitions"),
                {"months_back": months_back, "months_ahead": months_ahead},
            )
        return [r["name"] for r in rows]

    def commit_recording(self, rec: Recording) -> tuple[Recording, bool]:
        """Insert the row once. Returns (row, created).

        A replay of the same object (same bucket, key, checksum) returns the existing row
        with created=False; a different recording at the same camera and start time raises
        ``RecordingConflict`` — never a second row, never an overwrite.
        """
        month = (rec.start_time.astimezone(UTC).year, rec.start_time.astimezone(UTC).month)
        params: dict[str, Any] = {
            "camera_id": rec.camera_id,
            "start_time": rec.start_time,
            "end_time": rec.end_time,
            "duration_seconds": rec.duration_seconds,
            "s3_bucket": rec.s3_bucket,
            "s3_key": rec.s3_key,
            "size_bytes": rec.size_bytes,
            "checksum_algorithm": rec.checksum_algorithm,
            "checksum": rec.checksum,
            "codec": rec.codec,
            "width": rec.width,
            "height": rec.height,
            "storage_class": rec.storage_class,
            "sse": rec.sse,
            "etag": rec.etag,
            "run_id": rec.run_id,
            "node_id": rec.node_id or self._node,
        }
        expected = self._expect(rec) if self._expect else None
        params.update(
            expected_storage_class=expected.storage_class if expected else None,
            archive_class=expected.archive_class if expected else None,
            archive_at=expected.archive_at if expected else None,
            expires_at=expected.expires_at if expected else None,
        )
        try:
            with self._db.transaction() as s:
                if month not in self._partitions:
                    s.execute(query("ensure_partition"), {"ts": rec.start_time})
                inserted = s.fetchone(query("insert_recording"), params)
                existing = s.fetchone(
                    query("get_recording_at"),
                    {"camera_id": rec.camera_id, "start_time": rec.start_time},
                )
        except IntegrityViolation as exc:
            if exc.sqlstate == _FOREIGN_KEY_VIOLATION:
                raise UnknownCamera(rec.camera_id) from exc
            raise
        self._partitions.add(month)
        if existing is None:
            # the conflict was on (bucket, key) with another start second: a key clash
            raise RecordingConflict(
                f"{rec.s3_key} is already catalogued for a different start time"
            )
        row = recording_from_row(existing)
        if inserted is None and not _same_object(row, rec):
            raise RecordingConflict(
                f"camera {rec.camera_id} already has a different recording starting "
                f"{rec.start_time.isoformat()} ({row.s3_key}, checksum {row.checksum[:12]}…)"
            )
        return row, inserted is not None

    def get_recording_by_key(self, bucket: str, key: str) -> Recording | None:
        with self._db.transaction() as s:
            row = s.fetchone(query("get_recording_by_key"), {"s3_bucket": bucket, "s3_key": key})
        return None if row is None else recording_from_row(row)

    def list_recordings(
        self, camera_id: str, start: datetime, end: datetime, limit: int = 1000
    ) -> list[Recording]:
        with self._db.transaction() as s:
            rows = s.fetchall(
                query("list_recordings"),
                {"camera_id": camera_id, "start": start, "end": end, "limit": limit},
            )
        return [recording_from_row(r) for r in rows]

    def last_recording_per_camera(self) -> list[Row]:
        with self._db.transaction() as s:
            rows: list[Row] = s.fetchall(query("last_recording_per_camera"))
        return rows

    # upload errors ---------------------------------------------------------------------
    def record_upload_error(
        self,
        *,
        camera_id: str,
        segment_id: str,
        s3_key: str,
        attempts: int,
        error_class: str,
        message: str,
        node: str,
        occurred_at: datetime,
    ) -> None:
        with self._db.transaction() as s:
            s.execute(
                query("insert_upload_error"),
                {
                    "camera_id": camera_id,
                    "segment_id": segment_id,
                    "s3_key": s3_key,
                    "attempts": attempts,
                    "error_class": error_class,
                    "message": message[:2000],
                    "node": node,
                    "occurred_at": occurred_at,
                },
            )

    def list_upload_errors(self, camera_id: str | None = None, limit: int = 100) -> list[Row]:
        with self._db.transaction() as s:
            rows: list[Row] = s.fetchall(
                query("list_upload_errors"), {"camera_id": camera_id, "limit": limit}
            )
        return rows

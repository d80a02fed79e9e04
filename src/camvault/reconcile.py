"""The reconciler: make the catalog and the bucket agree again.

Three passes, each safe to repeat and to run beside a live uploader:

1. **Reprocessing queue** — segments whose object is in S3 but whose catalog commit
   failed (spool state ``uploaded``) are committed now, ignoring their backoff.
2. **Orphan scan** — every object under the prefix without a catalog row gets its row
   rebuilt from the object's own ``x-amz-meta-*`` headers (invariant 3).
3. **Missing-object scan** — every row whose object is gone is flagged (reported; only an
   operator can decide whether the footage expired or was lost).

Scale: the bucket is read as one key-ordered stream (``ListObjectsV2`` pages, or the rows
of an S3 Inventory CSV — anything yielding ``(key, size, last_modified)``), grouped by
camera, and merge-joined against that camera's rows read in keyset pages. Memory stays
flat however large the bucket. The merge is only a filter: every candidate is confirmed
by a point lookup (row by key / HEAD object) before it is reported or fixed, so an
unexpected ordering costs lookups, never a wrong answer.
"""

from __future__ import annotations

import csv
import itertools
import logging
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from camvault.catalog import Catalog, Connector
from camvault.catalog.queries import query
from camvault.errors import InputError, RecordingConflict, UnknownCamera
from camvault.keys import parse_key
from camvault.models import Segment, StoredObject
from camvault.objectmeta import recording_from_object

log = logging.getLogger(__name__)

KeyRow = tuple[str, int, datetime]  # (key, size, last modified)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PAGE = 1000


class ReconcileStore(Protocol):
    """The reconciler's view of the bucket. ``head`` returns the object (with metadata) or None
    when absent; ``list_keys`` yields (key, size, last modified) under the prefix in key order —
    the merge with the catalog depends on that order. Errors are camvault errors."""

    bucket: str

    def head(self, key: str) -> StoredObject | None: ...
    def list_keys(self, prefix: str) -> Iterator[KeyRow]: ...


@dataclass
class ReconcileReport:
    """What a reconcile run found and did: queue commits, objects and rows scanned, orphans, rows
    rebuilt, objects that could not be, mismatches."""

    dry_run: bool
    queue_committed: int = 0
    queue_remaining: int = 0
    objects_scanned: int = 0
    rows_scanned: int = 0
    foreign_keys: int = 0  # objects under the prefix that are not camvault segments
    orphans: list[str] = field(default_factory=list)  # objects without a row
    rebuilt: list[str] = field(default_factory=list)  # rows written from object metadata
    unrebuildable: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    # objects whose metadata names another camera/start than their key: never inserted,
    # or a forged header would file one camera's footage under another's grants
    mismatched: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    missing: list[str] = field(default_factory=list)  # rows without an object

    @property
    def clean(self) -> bool:
        return not (
            self.queue_remaining or self.unrebuildable or self.missing or self.mismatched
        ) and (len(self.rebuilt) == len(self.orphans))


def inventory_keys(path: Path, bucket: str, prefix: str = "") -> list[KeyRow]:
    """Rows of an S3 Inventory CSV (bucket, key, size, last_modified_date, …; keys are
    URL-encoded) for ``bucket`` under ``prefix``, in key order."""
    rows: list[KeyRow] = []
    with path.open(newline="", encoding="utf-8") as f:
        for rec in csv.reader(f):
            if len(rec) < 2 or rec[0] != bucket:
                continue
            key = urllib.parse.unquote_plus(rec[1])
            if not key.startswith(prefix) or key.endswith("/"):
                continue
            size = int(rec[2]) if len(rec) > 2 and rec[2].isdigit() else 0
            try:
                modified = datetime.fromisoformat(rec[3].replace("Z", "+00:00"))
            except (IndexError, ValueError):
                modified = _EPOCH
            rows.append((key, size, modified))
    rows.sort()
    return rows


class Reconciler:
    """Makes catalog and bucket agree (see the module docstring): commits the reprocessing queue,
    rebuilds rows of orphan objects, flags rows whose object is gone."""

    def __init__(
        self,
        catalog: Catalog,
        connector: Connector,
        store: ReconcileStore,
        *,
        prefix: str,
        pending_commits: Callable[[], list[Segment]] = list,
        commit: Callable[[Segment], bool] | None = None,
    ) -> None:
        self._catalog = catalog
        self._db = connector
        self._store = store
        self._prefix = prefix
        self._pending = pending_commits
        self._commit = commit

    # 1. reprocessing queue --------------------------------------------------------------
    def drain_queue(self, report: ReconcileReport) -> None:
        queued = self._pending()
        if report.dry_run or self._commit is None:
            report.queue_remaining = len(queued)
            return
        for seg in queued:
            if self._commit(seg):
                report.queue_committed += 1
            else:
                report.queue_remaining += 1

    # 2 + 3. orphan and missing-object scans ---------------------------------------------
    def scan(
        self,
        report: ReconcileReport,
        *,
        keys: Iterable[KeyRow] | None = None,
        orphans: bool = True,
        missing: bool = True,
    ) -> None:
        source = self._store.list_keys(self._prefix) if keys is None else keys
        seen: set[str] = set()
        for camera, group in itertools.groupby(source, key=lambda r: self._camera_of(r[0])):
            seen.add(camera)
            self._merge(camera, group, report, orphans=orphans, missing=missing)
        if missing:
            for cam in self._catalog.list_cameras():
                if cam.id not in seen:
                    self._merge(cam.id, iter(()), report, orphans=False, missing=True)

    def run(
        self,
        *,
        dry_run: bool = False,
        keys: Iterable[KeyRow] | None = None,
        orphans: bool = True,
        missing: bool = True,
    ) -> ReconcileReport:
        report = ReconcileReport(dry_run=dry_run)
        self.drain_queue(report)
        if orphans or missing:
            self.scan(report, keys=keys, orphans=orphans, missing=missing)
        return report

    # internals ----------------------------------------------------------------------------
    def _camera_of(self, key: str) -> str:
        return key[len(self._prefix) :].split("/", 1)[0]

    def _rows(self, camera_id: str) -> Iterator[str]:
        after = _EPOCH
        while True:
            with self._db.transaction() as s:
                page = s.fetchall(
                    query("recon_rows_page", "reconcile.sql"),
                    {
                        "camera_id": camera_id,
                        "bucket": self._store.bucket,
                        "prefix": self._prefix,
                        "after": after,
                        "limit": _PAGE,
                    },
                )
            for row in page:
                yield str(row["s3_key"])
            if len(page) < _PAGE:
                return
            after = page[-1]["start_time"]

    def _merge(
        self,
        camera_id: str,
        objects: Iterator[KeyRow],
        report: ReconcileReport,
        *,
        orphans: bool,
        missing: bool,
    ) -> None:
        keys = (r[0] for r in objects)
        rows = self._rows(camera_id)
        k, r = next(keys, None), next(rows, None)
        while k is not None or r is not None:
            if r is None or (k is not None and k < r):
                assert k is not None
                report.objects_scanned += 1
                if orphans:
                    self._orphan_candidate(k, report)
                k = next(keys, None)
            elif k is None or r < k:
                report.rows_scanned += 1
                if missing:
                    self._missing_candidate(r, report)
                r = next(rows, None)
            else:
                report.objects_scanned += 1
                report.rows_scanned += 1
                k, r = next(keys, None), next(rows, None)

    def _orphan_candidate(self, key: str, report: ReconcileReport) -> None:
        parsed = parse_key(self._prefix, key)
        if parsed is None:
            report.foreign_keys += 1
            return
        if self._catalog.get_recording_by_key(self._store.bucket, key) is not None:
            return  # the merge order differed from the key order; not an orphan
        report.orphans.append(key)
        obj = self._store.head(key)
        if obj is None:
            return  # deleted since the listing
        try:
            rec = recording_from_object(obj)
        except InputError as exc:
            report.unrebuildable.append((key, str(exc)))
            return
        why = _key_disagrees(parsed, rec.camera_id, rec.start_time)
        if why is not None:
            report.mismatched.append((key, why))
            log.warning("reconcile: %s: %s; not inserted", key, why)
            return
        if report.dry_run:
            return
        try:
            _, created = self._catalog.commit_recording(rec)
        except (UnknownCamera, RecordingConflict) as exc:
            report.unrebuildable.append((key, str(exc)))
            return
        report.rebuilt.append(key)
        log.info("reconcile: %s row for orphan %s", "rebuilt" if created else "found", key)

    def _missing_candidate(self, key: str, report: ReconcileReport) -> None:
        if self._store.head(key) is not None:
            return
        report.missing.append(key)
        log.warning("reconcile: catalog row without object: %s", key)


def _key_disagrees(
    parsed: tuple[str, datetime, str], camera_id: str, start: datetime
) -> str | None:
    """Why the metadata contradicts the key (camera, start to the second), else None."""
    key_camera, key_start, _ = parsed
    if camera_id != key_camera:
        return f"metadata camera-id {camera_id!r} differs from the key's camera {key_camera!r}"
    meta_start = start.astimezone(UTC).replace(microsecond=0)
    if meta_start != key_start:
        return (
            f"metadata start {start.astimezone(UTC).isoformat()} differs from the key's "
            f"start {key_start.isoformat()}"
        )
    return None

"""``camvault retention sync``: make the catalog tell the truth about what lifecycle did.

For every camera with live rows, one listing of its key prefix is compared with the rows:

* object present → the row gets the actual storage class and what the rules *in force*
  (read from the bucket, not the config) say: expected class now, archive class and date,
  expiry date. An object that should have been deleted, or moved, more than
  ``drift_grace_days`` ago is reported as drift (S3 runs rules up to a day or two late).
* object gone → the row becomes a tombstone (``deleted_at``; hidden from listings, kept
  for the audit trail): reason ``expired`` when the rules say it was due, else
  ``vanished`` — deleted behind camvault's back, which is reported as drift.

Objects without a row are the reconciler's business (orphan scan); they are only counted.
Cameras whose retention config has no matching rule in the bucket (``bucket apply`` not
run, or a rule the backend refused) are reported too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from camvault import lifecycle
from camvault.catalog.connector import Row
from camvault.catalog.lifecycle_catalog import LifecycleCatalog
from camvault.glacier import ArchiveStore
from camvault.keys import camera_prefix

log = logging.getLogger(__name__)

# the row is written a moment after S3 created the object: allow that much when deciding
# whether a vanished object had already reached its expiry
_CREATION_SLACK = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Drift:
    """One disagreement between the lifecycle rules and what S3 did to an object, past the grace
    period."""

    kind: str  # overdue_expiry | class_mismatch | vanished_early | rule_missing
    camera_id: str
    key: str
    detail: str


@dataclass
class SyncReport:
    """What a retention sync checked and changed, the drift it found, and warnings."""

    checked: int = 0
    updated: int = 0
    tombstoned_expired: int = 0
    tombstoned_vanished: int = 0
    untracked_objects: int = 0
    restores_refreshed: int = 0
    drift: list[Drift] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "updated": self.updated,
            "tombstoned_expired": self.tombstoned_expired,
            "tombstoned_vanished": self.tombstoned_vanished,
            "untracked_objects": self.untracked_objects,
            "restores_refreshed": self.restores_refreshed,
            "drift": [
                {"kind": d.kind, "camera_id": d.camera_id, "key": d.key, "detail": d.detail}
                for d in self.drift
            ],
            "warnings": self.warnings,
        }


class RetentionSync:
    """``camvault retention sync`` (see the module docstring): updates rows from the bucket's
    listing and the rules in force; tombstones rows whose object is gone."""

    def __init__(
        self,
        catalog: LifecycleCatalog,
        archive: ArchiveStore,
        rules_in_force: Callable[[], Sequence[Mapping[str, Any]]],
        policy: lifecycle.RetentionPolicy,
        *,
        drift_grace: timedelta,  # S3 runs lifecycle rules up to ~a day late
        prefix: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._catalog = catalog
        self._archive = archive
        self._rules = rules_in_force
        self._policy = policy
        self._grace = drift_grace
        self._prefix = prefix
        self._now = clock

    def run(self, *, dry_run: bool = False) -> SyncReport:
        report = SyncReport()
        now = self._now()
        rules = list(self._rules())
        for camera_id in self._catalog.cameras(self._archive.bucket):
            self._check_rules(camera_id, rules, report)
            self._sync_camera(camera_id, rules, now, report, dry_run)
        if not dry_run and (report.tombstoned_expired or report.tombstoned_vanished):
            self._catalog.audit(
                None,
                {
                    "action": "retention.sync",
                    "detail": {
                        "tombstoned_expired": report.tombstoned_expired,
                        "tombstoned_vanished": report.tombstoned_vanished,
                        "drift": len(report.drift),
                    },
                },
            )
        return report

    def _check_rules(
        self, camera_id: str, rules: Sequence[Mapping[str, Any]], report: SyncReport
    ) -> None:
        want = self._policy.of(camera_id)
        probe = f"{camera_prefix(self._prefix, camera_id)}probe"
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        got = lifecycle.evaluate(rules, probe, epoch, epoch)
        missing = []
        if want.expire_days and got.expires_at != lifecycle.action_time(epoch, want.expire_days):
            missing.append(f"expire after {want.expire_days} days")
        if want.transition_class and (
            got.archive_class != want.transition_class
            or got.archive_at != lifecycle.action_time(epoch, want.transition_days)
        ):
            missing.append(
                f"transition to {want.transition_class} after {want.transition_days} days"
            )
        if missing:
            report.drift.append(
                Drift(
                    "rule_missing",
                    camera_id,
                    camera_prefix(self._prefix, camera_id),
                    f"configured ({'; '.join(missing)}) but not in force in the bucket: "
                    "run `camvault bucket apply` (or the backend refused it)",
                )
            )

    def _sync_camera(
        self,
        camera_id: str,
        rules: Sequence[Mapping[str, Any]],
        now: datetime,
        report: SyncReport,
        dry_run: bool,
    ) -> None:
        listing = {
            o.key: o for o in self._archive.list_objects(camera_prefix(self._prefix, camera_id))
        }
        grace = self._grace
        updates: list[dict[str, Any]] = []
        for row in self._catalog.live_recordings(self._archive.bucket, camera_id):
            report.checked += 1
            key = row["s3_key"]
            obj = listing.pop(key, None)
            if obj is None:
                self._gone(row, rules, now, report, dry_run)
                continue
            exp = lifecycle.evaluate(rules, key, obj.last_modified, now, obj.size_bytes)
            if exp.expires_at is not None and exp.expires_at + grace <= now:
                report.drift.append(
                    Drift(
                        "overdue_expiry",
                        camera_id,
                        key,
                        f"should have been deleted on {exp.expires_at:%Y-%m-%d} but is still "
                        f"in the bucket ({obj.storage_class})",
                    )
                )
            elif exp.storage_class != obj.storage_class and _due_before(
                rules, key, obj, exp.storage_class, now - grace
            ):
                report.drift.append(
                    Drift(
                        "class_mismatch",
                        camera_id,
                        key,
                        f"should be in {exp.storage_class}, is in {obj.storage_class}",
                    )
                )
            state = {
                "storage_class": obj.storage_class,
                "expected_storage_class": exp.storage_class,
                "archive_class": exp.archive_class,
                "archive_at": exp.archive_at,
                "expires_at": exp.expires_at,
            }
            if any(row.get(k) != v for k, v in state.items()):
                report.updated += 1
                updates.append(
                    {**state, "id": row["id"], "start_time": row["start_time"], "checked_at": now}
                )
            if len(updates) >= 500 and not dry_run:
                self._catalog.update_states(updates)
                updates = []
        if not dry_run:
            self._catalog.update_states(updates)
        report.untracked_objects += len(listing)

    def _gone(
        self,
        row: Row,
        rules: Sequence[Mapping[str, Any]],
        now: datetime,
        report: SyncReport,
        dry_run: bool,
    ) -> None:
        exp = lifecycle.evaluate(rules, row["s3_key"], row["created_at"], now, row["size_bytes"])
        due = exp.expires_at is not None and exp.expires_at - _CREATION_SLACK <= now
        reason = "expired" if due else "vanished"
        if reason == "vanished":
            when = f"due {exp.expires_at:%Y-%m-%d}" if exp.expires_at else "no expiry rule"
            report.drift.append(
                Drift(
                    "vanished_early",
                    row["camera_id"],
                    row["s3_key"],
                    f"object is gone before its expiry ({when}); row tombstoned",
                )
            )
        if dry_run or self._catalog.tombstone(
            row, reason=reason, at=now, expires_at=exp.expires_at
        ):
            if due:
                report.tombstoned_expired += 1
            else:
                report.tombstoned_vanished += 1


def _due_before(
    rules: Sequence[Mapping[str, Any]],
    key: str,
    obj: Any,
    expected_class: str,
    cutoff: datetime,
) -> bool:
    """Was the move to ``expected_class`` already due at ``cutoff`` (i.e. is S3 late)?"""
    earlier = lifecycle.evaluate(rules, key, obj.last_modified, cutoff, obj.size_bytes)
    return earlier.storage_class == expected_class

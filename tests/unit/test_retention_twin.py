"""``retention sync`` on the twins: per camera (default rules vs a ``[lifecycle.cameras]``
override) what each row learns — class now, archive class and date, expiry — which
objects are overdue or in the wrong class, and which rows become tombstones (expired or
vanished). The rules are what ``bucket apply`` writes for the settings. No server."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from camvault import lifecycle
from camvault.catalog import Catalog
from camvault.catalog.lifecycle_catalog import LifecycleCatalog
from camvault.catalog.memory import MemoryConnector
from camvault.config import LifecycleSettings
from camvault.retention import RetentionSync, SyncReport
from camvault.s3.memory import MemoryObjectStore
from camvault.s3.memory_archive import MemoryArchive
from camvault.wiring import retention_policy
from tests.support.twins import T0, catalogue, put_segment_object

PREFIX = "site/"
# default: GLACIER after 30 days, gone after 365; "lobby": no archive, gone after 60 days
LC = LifecycleSettings.model_validate(
    {
        "transition_after_days": 30,
        "transition_storage_class": "GLACIER",
        "expire_after_days": 365,
        "cameras": {"lobby": {"transition_storage_class": "", "expire_after_days": 60}},
    }
)
ARCHIVE_AT = lifecycle.action_time(T0, 30)
CAM_EXPIRY = lifecycle.action_time(T0, 365)
LOBBY_EXPIRY = lifecycle.action_time(T0, 60)


class Twins:
    def __init__(self) -> None:
        self.db = MemoryConnector(clock=lambda: T0)  # rows created when the objects were
        self.store = MemoryObjectStore(bucket="b")
        catalog = Catalog(self.db)
        self.keys: dict[str, str] = {}
        for cam in ("cam", "lobby"):
            catalog.upsert_camera(cam)
            key = put_segment_object(self.store, cam, T0, prefix=PREFIX)
            catalogue(catalog, self.store, key)
            self.keys[cam] = key
        self.rules = lifecycle.lifecycle_rules(retention_policy(LC), PREFIX, ["cam", "lobby"])

    def sync(self, now: datetime, *, dry_run: bool = False, lc: Any = LC) -> SyncReport:
        return RetentionSync(
            LifecycleCatalog(self.db),
            MemoryArchive(self.store),
            lambda: self.rules,
            retention_policy(lc),
            drift_grace=timedelta(days=lc.drift_grace_days),
            prefix=PREFIX,
            clock=lambda: now,
        ).run(dry_run=dry_run)

    def row(self, cam: str) -> dict[str, Any]:
        [r] = [r for r in self.db.recordings.values() if r["s3_key"] == self.keys[cam]]
        return r


@pytest.fixture
def tw() -> Twins:
    return Twins()


def _state(row: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("storage_class", "expected_storage_class", "archive_class", "archive_at")
    return (*(row[k] for k in keys), row["expires_at"])


def test_rows_learn_what_the_rules_do_per_camera(tw: Twins) -> None:
    now = T0 + timedelta(days=10)
    report = tw.sync(now)
    assert (report.checked, report.updated, report.drift) == (2, 2, [])
    assert _state(tw.row("cam")) == ("STANDARD", "STANDARD", "GLACIER", ARCHIVE_AT, CAM_EXPIRY)
    assert _state(tw.row("lobby")) == ("STANDARD", "STANDARD", None, None, LOBBY_EXPIRY)
    assert tw.row("cam")["lifecycle_checked_at"] == now
    assert tw.db.audit_log == [], "nothing tombstoned: nothing to audit"
    assert tw.sync(now).updated == 0, "a second run finds nothing new"


def test_transitioned_object_updates_the_row(tw: Twins) -> None:
    tw.store.set_storage_class(tw.keys["cam"], "GLACIER")  # S3 ran the archive rule
    report = tw.sync(ARCHIVE_AT + timedelta(days=1))
    assert report.drift == []
    assert _state(tw.row("cam")) == ("GLACIER", "GLACIER", "GLACIER", ARCHIVE_AT, CAM_EXPIRY)
    assert tw.row("lobby")["storage_class"] == "STANDARD", "the override never archives"


def test_a_late_transition_is_drift_only_after_the_grace(tw: Twins) -> None:
    within = tw.sync(ARCHIVE_AT + timedelta(days=LC.drift_grace_days - 1))
    assert within.drift == []
    assert tw.row("cam")["expected_storage_class"] == "GLACIER"
    assert tw.row("cam")["storage_class"] == "STANDARD"
    late = tw.sync(ARCHIVE_AT + timedelta(days=LC.drift_grace_days + 1))
    assert [(d.kind, d.key, d.detail) for d in late.drift] == [
        ("class_mismatch", tw.keys["cam"], "should be in GLACIER, is in STANDARD")
    ]


def test_object_past_its_override_expiry_is_overdue_drift(tw: Twins) -> None:
    tw.store.set_storage_class(tw.keys["cam"], "GLACIER")  # the default camera is on time
    report = tw.sync(LOBBY_EXPIRY + timedelta(days=LC.drift_grace_days))
    assert [(d.kind, d.camera_id) for d in report.drift] == [("overdue_expiry", "lobby")]
    assert tw.row("lobby")["deleted_at"] is None, "still in the bucket: not a tombstone"
    assert tw.store.objects[tw.keys["lobby"]].body == b"video", "sync never deletes objects"


def test_object_gone_after_its_expiry_is_an_expired_tombstone(tw: Twins) -> None:
    now = LOBBY_EXPIRY + timedelta(hours=3)
    tw.store.delete(tw.keys["lobby"])  # S3 ran the override's expiry
    tw.store.set_storage_class(tw.keys["cam"], "GLACIER")  # and the default's transition
    report = tw.sync(now)
    assert (report.tombstoned_expired, report.tombstoned_vanished, report.drift) == (1, 0, [])
    lobby = tw.row("lobby")
    assert (lobby["deleted_at"], lobby["deleted_reason"], lobby["expires_at"]) == (
        now,
        "expired",
        LOBBY_EXPIRY,
    )
    assert tw.row("cam")["deleted_at"] is None
    [audit] = tw.db.audit_log
    assert audit["action"] == "retention.sync" and audit["actor"] == "system"
    assert audit["detail"] == {"tombstoned_expired": 1, "tombstoned_vanished": 0, "drift": 0}
    again = tw.sync(now + timedelta(days=1))
    assert again.checked == 1 and again.tombstoned_expired == 0, "tombstones are not live"


def test_object_gone_before_its_expiry_is_vanished_drift(tw: Twins) -> None:
    now = T0 + timedelta(days=40)
    tw.store.delete(tw.keys["cam"])  # deleted behind camvault's back
    report = tw.sync(now)
    assert report.tombstoned_vanished == 1
    [drift] = report.drift
    assert (drift.kind, drift.key) == ("vanished_early", tw.keys["cam"])
    assert f"due {CAM_EXPIRY:%Y-%m-%d}" in drift.detail
    cam = tw.row("cam")
    assert (cam["deleted_reason"], cam["deleted_at"]) == ("vanished", now)
    [audit] = tw.db.audit_log
    assert audit["detail"]["tombstoned_vanished"] == 1 and audit["detail"]["drift"] == 1


def test_dry_run_reports_and_writes_nothing(tw: Twins) -> None:
    tw.store.delete(tw.keys["cam"])
    before = {k: dict(v) for k, v in tw.db.recordings.items()}
    report = tw.sync(T0 + timedelta(days=40), dry_run=True)
    assert (report.tombstoned_vanished, report.updated) == (1, 1)
    assert tw.db.recordings == before and tw.db.audit_log == []
    assert not {"update_lifecycle_state", "tombstone_recording"} & set(tw.db.names())


def test_rules_not_in_force_are_reported_per_camera(tw: Twins) -> None:
    tw.rules = lifecycle.lifecycle_rules(
        retention_policy(LC.model_copy(update={"cameras": {}})), PREFIX, ["cam", "lobby"]
    )  # the override was never applied
    report = tw.sync(T0 + timedelta(days=1))
    assert [(d.kind, d.camera_id) for d in report.drift] == [("rule_missing", "lobby")]
    assert "expire after 60 days" in report.drift[0].detail
    # a backend that refuses transitions (SeaweedFS: NotImplemented) kept only expirations
    tw.rules = [
        r
        for r in lifecycle.lifecycle_rules(retention_policy(LC), PREFIX, ["cam"])
        if "Transitions" not in r
    ]
    [drift] = tw.sync(T0 + timedelta(days=1)).drift
    assert (drift.kind, drift.camera_id) == ("rule_missing", "cam")
    assert "transition to GLACIER after 30 days" in drift.detail
    tw.rules = []  # `bucket apply` never ran
    report = tw.sync(T0 + timedelta(days=1))
    assert sorted(d.camera_id for d in report.drift if d.kind == "rule_missing") == [
        "cam",
        "lobby",
    ]
    assert tw.row("cam")["expires_at"] is None, "no rule in force: no expiry to promise"


def test_objects_without_a_row_are_only_counted(tw: Twins) -> None:
    extra = put_segment_object(tw.store, "cam", T0 + timedelta(minutes=5), prefix=PREFIX)
    report = tw.sync(T0 + timedelta(days=1))
    assert report.untracked_objects == 1 and len(tw.db.recordings) == 2
    assert extra in tw.store.objects

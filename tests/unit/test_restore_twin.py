"""Glacier restores on the twins: archived → restore requested (audited before S3 is
asked), already restoring, restored, lapsed; refusals; the playback gate. No server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from camvault.catalog import Catalog
from camvault.catalog.lifecycle_catalog import LifecycleCatalog
from camvault.catalog.memory import MemoryConnector
from camvault.errors import InputError, NotFound, ObjectArchived, StoragePermanentError
from camvault.lifecycle import RestoreState
from camvault.restore import Actor, RestoreService
from camvault.s3.memory import MemoryObjectStore
from camvault.s3.memory_archive import MemoryArchive
from tests.support.twins import T0, catalogue, put_segment_object

NOW = T0 + timedelta(days=100)
USER = Actor(user_id=7, user_name="ann", label="user:ann", client_addr="10.0.0.9", user_agent="t")


class Twins:
    def __init__(self) -> None:
        self.now = NOW
        self.db = MemoryConnector(clock=lambda: self.now)
        self.store = MemoryObjectStore(bucket="b")
        self.archive = MemoryArchive(self.store, clock=lambda: self.now)
        catalog = Catalog(self.db)
        catalog.upsert_camera("cam")
        self.ids: dict[str, int] = {}
        for i, cls in enumerate(("GLACIER", "STANDARD", "DEEP_ARCHIVE")):
            start = T0 + timedelta(minutes=5 * i)
            key = put_segment_object(self.store, "cam", start, storage_class=cls)
            rec = catalogue(catalog, self.store, key)
            assert rec.id is not None
            self.ids[cls] = rec.id
        self.svc = RestoreService(
            LifecycleCatalog(self.db), self.archive, tier="Bulk", days=3, clock=lambda: self.now
        )

    def key(self, cls: str) -> str:
        return str(self.db.recordings[self.ids[cls]]["s3_key"])

    def restore_row(self, cls: str) -> dict[str, Any]:
        rid = self.ids[cls]
        return self.db.restores[(rid, self.db.recordings[rid]["start_time"])]

    def actions(self) -> list[str]:
        return [a["action"] for a in self.db.audit_log]


@pytest.fixture
def tw() -> Twins:
    return Twins()


def test_archived_recording_restore_is_audited_before_s3_is_asked(tw: Twins) -> None:
    seen: dict[str, Any] = {}

    def at_restore(op: str, key: str) -> None:
        if op == "restore":
            seen["audit"] = tw.actions()
            seen["status"] = tw.restore_row("GLACIER")["status"]

    tw.store.fault = at_restore
    st = tw.svc.request(tw.ids["GLACIER"], USER)
    assert seen == {"audit": ["restore.request"], "status": "requested"}
    assert (st.status, st.tier, st.days, st.requested_at) == ("in_progress", "Bulk", 3, NOW)
    assert tw.archive.requests == [(tw.key("GLACIER"), 3, "Bulk")]
    row = tw.restore_row("GLACIER")
    assert (row["status"], row["tier"], row["days"], row["requested_by"]) == (
        "in_progress",
        "Bulk",
        3,
        7,
    )
    assert row["detail"] == "started" and row["restored_until"] is None
    request, accepted = tw.db.audit_log
    assert (request["action"], request["detail"]) == (
        "restore.request",
        {"tier": "Bulk", "days": 3},
    )
    assert (accepted["action"], accepted["detail"]) == (
        "restore.accepted",
        {"outcome": "started", "status": "in_progress"},
    )
    for a in (request, accepted):
        assert (a["user_id"], a["actor"], a["client_addr"], a["user_agent"]) == (
            7,
            "user:ann",
            "10.0.0.9",
            "t",
        )
        assert (a["recording_id"], a["s3_key"]) == (tw.ids["GLACIER"], tw.key("GLACIER"))
    assert all(
        u == 7
        for name, u in tw.db.statements
        if name in ("get_recording_with_restore", "upsert_restore", "update_restore_status")
    ), "row-level security: every restore statement runs as the user"
    assert tw.store.objects[tw.key("GLACIER")].storage_class == "GLACIER"


def test_restore_already_running_in_s3_is_in_progress(tw: Twins) -> None:
    tw.archive.restores[tw.key("DEEP_ARCHIVE")] = RestoreState(True, None)  # asked elsewhere
    st = tw.svc.request(tw.ids["DEEP_ARCHIVE"], tier="Standard", days=1)
    assert st.status == "in_progress" and tw.archive.requests == []
    assert tw.restore_row("DEEP_ARCHIVE")["detail"] == "in_progress"
    assert tw.db.audit_log[-1]["detail"] == {"outcome": "in_progress", "status": "in_progress"}
    assert tw.db.audit_log[-1]["actor"] == "system"


def test_restored_copy_is_playable_and_completion_is_audited_once(tw: Twins) -> None:
    rid, until = tw.ids["GLACIER"], NOW + timedelta(days=3)
    tw.svc.request(rid, USER)
    with pytest.raises(ObjectArchived) as info:
        tw.svc.playable(rid, USER)
    assert info.value.state["status"] == "in_progress"
    assert info.value.state["restore"] == f"POST /api/recordings/{rid}/restore"
    tw.archive.complete_restore(tw.key("GLACIER"), until)
    assert tw.svc.playable(rid, USER)["id"] == rid
    assert tw.svc.playable(rid, USER)["id"] == rid
    row = tw.restore_row("GLACIER")
    assert (row["status"], row["restored_until"]) == ("restored", until)
    assert tw.actions() == ["restore.request", "restore.accepted", "restore.completed"]
    assert tw.db.audit_log[-1]["detail"] == {
        "restored_until": str(until),
        "was": "in_progress",
    }


def test_restoring_a_readable_copy_again_extends_it(tw: Twins) -> None:
    rid = tw.ids["GLACIER"]
    tw.svc.request(rid)
    tw.archive.complete_restore(tw.key("GLACIER"), NOW + timedelta(days=1))
    st = tw.svc.request(rid, days=9)
    assert (st.status, st.restored_until) == ("restored", NOW + timedelta(days=9))
    row = tw.restore_row("GLACIER")
    assert (row["status"], row["days"], row["restored_until"]) == (
        "restored",
        9,
        NOW + timedelta(days=9),
    )


def test_polling_follows_completion_and_lapse(tw: Twins) -> None:
    until = NOW + timedelta(days=3)
    tw.svc.request(tw.ids["GLACIER"])
    tw.svc.request(tw.ids["DEEP_ARCHIVE"])
    assert tw.svc.poll_pending() == 0, "both still running"
    tw.archive.complete_restore(tw.key("GLACIER"), until)
    assert tw.svc.poll_pending() == 1
    assert tw.restore_row("GLACIER")["status"] == "restored"
    assert tw.restore_row("DEEP_ARCHIVE")["status"] == "in_progress"
    tw.now = until + timedelta(hours=1)
    tw.archive.lapse_restore(tw.key("GLACIER"))
    assert tw.svc.poll_pending() == 1
    assert tw.restore_row("GLACIER")["status"] == "expired"
    assert tw.actions()[-2:] == ["restore.completed", "restore.lapsed"]
    assert tw.svc.status(tw.ids["GLACIER"]).status == "expired"
    with pytest.raises(ObjectArchived):
        tw.svc.playable(tw.ids["GLACIER"])


def test_s3_refusing_the_restore_is_recorded_and_raised(tw: Twins) -> None:
    def refuse(op: str, key: str) -> None:
        if op == "restore":
            raise StoragePermanentError(
                "S3 RESTORE failed: AccessDenied (403)", code="AccessDenied"
            )

    tw.store.fault = refuse
    with pytest.raises(StoragePermanentError):
        tw.svc.request(tw.ids["GLACIER"], USER)
    row = tw.restore_row("GLACIER")
    assert row["status"] == "failed" and "AccessDenied" in row["detail"]
    assert tw.actions() == ["restore.request", "restore.failed"]
    assert tw.db.audit_log[-1]["detail"] == {"error": "StoragePermanentError"}
    tw.store.fault = None
    assert tw.svc.status(tw.ids["GLACIER"]).status == "archived", "nothing is coming"


def test_unarchived_recording_plays_directly_and_cannot_be_restored(tw: Twins) -> None:
    rid = tw.ids["STANDARD"]
    assert tw.svc.playable(rid)["id"] == rid
    assert tw.svc.status(rid).status == "not_archived"
    with pytest.raises(InputError, match="not archived: it can be played directly"):
        tw.svc.request(rid)
    assert tw.db.restores == {} and tw.db.audit_log == [] and tw.archive.requests == []


@pytest.mark.parametrize(("tier", "days"), [("Instant", 1), ("Bulk", -1), ("Bulk", 366)])
def test_bad_tier_or_days_is_refused_before_anything_happens(
    tw: Twins, tier: str, days: int
) -> None:
    tw.db.statements.clear()
    tw.store.calls.clear()
    with pytest.raises(InputError, match="invalid restore"):
        tw.svc.request(tw.ids["GLACIER"], tier=tier, days=days)
    assert tw.db.statements == [] and tw.store.calls == []


def test_missing_tombstoned_or_objectless_recording_is_not_found(tw: Twins) -> None:
    with pytest.raises(NotFound, match="recording 999 not found"):
        tw.svc.status(999)
    tw.store.delete(tw.key("DEEP_ARCHIVE"))
    with pytest.raises(NotFound, match="no longer in storage"):
        tw.svc.request(tw.ids["DEEP_ARCHIVE"])
    tw.db.recordings[tw.ids["GLACIER"]]["deleted_at"] = NOW
    with pytest.raises(NotFound):
        tw.svc.playable(tw.ids["GLACIER"])
    assert tw.db.restores == {} and tw.archive.requests == []


def test_archived_without_a_request_is_a_409_state(tw: Twins) -> None:
    with pytest.raises(ObjectArchived) as info:
        tw.svc.playable(tw.ids["GLACIER"], USER)
    state = info.value.state
    assert (state["status"], state["storage_class"]) == ("archived", "GLACIER")
    assert state["tiers"] == ["Expedited", "Standard", "Bulk"]
    assert tw.db.restores == {} and tw.db.audit_log == []

"""The Glacier side of the in-memory S3 twin: ``glacier.ArchiveStore`` over the objects of
a ``MemoryObjectStore``, for unit tests of retention sync and restores (no server).

Semantics mirrored from S3 (and ``glacier.S3Archive``'s reading of them):

* ``list_objects`` gives key, size, last modified and storage class (no restore state —
  ListObjectsV2 does not carry it); ``head`` adds the ``x-amz-restore`` state;
* ``restore`` on an object in GLACIER / DEEP_ARCHIVE starts a restore (``"started"``,
  HEAD then shows it ongoing); again while it runs → ``"in_progress"``
  (RestoreAlreadyInProgress); on an already restored copy → ``"started"`` with the expiry
  moved (S3 answers 200 and extends it); on any other class → ``"not_archived"``
  (InvalidObjectState); on a missing key → ``StorageUnavailable`` ``NoSuchKey``, as
  ``s3.boto.translate`` maps S3's 404;
* ``complete_restore`` / ``lapse_restore`` are what S3 does hours later.

The store's ``fault(op, key)`` hook also sees ``list`` / ``head`` / ``restore`` here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from camvault.errors import StorageUnavailable
from camvault.glacier import ObjectState, RestoreOutcome
from camvault.lifecycle import RestoreState, needs_restore
from camvault.s3.memory import MemoryObjectStore


class MemoryArchive:
    """Implements ``glacier.ArchiveStore`` on a ``MemoryObjectStore``."""

    def __init__(
        self,
        store: MemoryObjectStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.bucket = store.bucket
        self.clock = clock
        self.restores: dict[str, RestoreState] = {}  # key → x-amz-restore state
        self.requests: list[tuple[str, int, str]] = []  # (key, days, tier) S3 accepted

    def list_objects(self, prefix: str) -> Iterator[ObjectState]:
        self.store._call("list", prefix)
        for key in sorted(self.store.objects):
            if key.startswith(prefix):
                obj = self.store.objects[key]
                yield ObjectState(key, len(obj.body), obj.last_modified, obj.storage_class)

    def head(self, key: str) -> ObjectState | None:
        self.store._call("head", key)
        obj = self.store.objects.get(key)
        if obj is None:
            self.restores.pop(key, None)  # a restored copy goes with its object
            return None
        return ObjectState(
            key, len(obj.body), obj.last_modified, obj.storage_class, self.restores.get(key)
        )

    def restore(self, key: str, *, days: int, tier: str) -> RestoreOutcome:
        self.store._call("restore", key)
        obj = self.store.objects.get(key)
        if obj is None:
            raise StorageUnavailable(f"S3 RESTORE {key} failed: NoSuchKey (404)", code="NoSuchKey")
        if not needs_restore(obj.storage_class):
            return "not_archived"
        state = self.restores.get(key)
        if state is not None and state.ongoing:
            return "in_progress"
        if state is not None:  # a readable copy: S3 moves its expiry
            state = RestoreState(False, self.clock() + timedelta(days=days))
        else:
            state = RestoreState(True, None)
        self.restores[key] = state
        self.requests.append((key, days, tier))
        return "started"

    # --- test controls: what S3 does later -------------------------------------------------

    def complete_restore(self, key: str, expires_at: datetime) -> None:
        """The restore job finished: a readable copy until ``expires_at``."""
        self.restores[key] = RestoreState(False, expires_at)

    def lapse_restore(self, key: str) -> None:
        """The restored copy expired: only the archived object is left."""
        self.restores.pop(key, None)

"""The Glacier twin (``s3.memory_archive.MemoryArchive``) and ``glacier.S3Archive`` on moto
(which stores GLACIER objects and restores them) answer the same: the retention and
restore unit tests rely on the twin's semantics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from camvault.errors import StorageUnavailable
from camvault.glacier import ArchiveStore, S3Archive
from camvault.s3.memory import SSE, MemoryObject, MemoryObjectStore
from camvault.s3.memory_archive import MemoryArchive
from tests.support.moto_s3 import REGION, moto_client, new_bucket_name

Put = Callable[[str, bytes, str], None]


@pytest.fixture(params=["memory", "moto"])
def archive(request: pytest.FixtureRequest) -> Iterator[tuple[ArchiveStore, Put]]:
    if request.param == "memory":
        store = MemoryObjectStore(bucket="b")

        def put_memory(key: str, body: bytes, storage_class: str) -> None:
            store.objects[key] = MemoryObject(body, {}, SSE, storage_class)

        yield MemoryArchive(store), put_memory
        return
    s3 = moto_client(request.getfixturevalue("moto_endpoint"))
    bucket = new_bucket_name()
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})

    def put_moto(key: str, body: bytes, storage_class: str) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=body, StorageClass=storage_class)

    yield S3Archive(s3, bucket), put_moto


def test_listing_head_and_restores_agree(archive: tuple[ArchiveStore, Put]) -> None:
    store, put = archive
    before = datetime.now(UTC).replace(microsecond=0)
    put("cam/a.mp4", b"cold", "GLACIER")
    put("cam/b.mp4", b"warm!", "STANDARD")
    put("other/c.mp4", b"x", "DEEP_ARCHIVE")
    listed = [(o.key, o.size_bytes, o.storage_class, o.restore) for o in store.list_objects("cam/")]
    assert listed == [("cam/a.mp4", 4, "GLACIER", None), ("cam/b.mp4", 5, "STANDARD", None)]
    assert all(o.last_modified >= before for o in store.list_objects(""))
    head = store.head("cam/a.mp4")
    assert head is not None and (head.storage_class, head.restore) == ("GLACIER", None)
    assert store.head("cam/none.mp4") is None

    assert store.restore("cam/b.mp4", days=1, tier="Standard") == "not_archived"
    assert store.restore("cam/a.mp4", days=1, tier="Standard") == "started"
    restored = store.head("cam/a.mp4")
    assert restored is not None and restored.restore is not None
    assert restored.storage_class == "GLACIER", "a restore makes a copy; the class stays"
    with pytest.raises(StorageUnavailable) as info:
        store.restore("cam/none.mp4", days=1, tier="Standard")
    assert info.value.code == "NoSuchKey"

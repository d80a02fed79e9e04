"""The If-None-Match probe is remembered per (endpoint, bucket) for a while, never a failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from camvault.config import S3Settings
from camvault.embedded import SeaweedFS
from camvault.storage import S3ObjectStore, cached_conditional_writes, make_client


def _store(endpoint: str, bucket: str, creds: tuple[str, str]) -> tuple[S3ObjectStore, list[str]]:
    settings = S3Settings(
        bucket=bucket,
        endpoint_url=endpoint,
        addressing_style="path",
        connect_timeout_seconds=1,
        read_timeout_seconds=2,
    )
    client = make_client(settings, credentials=creds)
    probes: list[str] = []

    def count(request: Any, **_: Any) -> None:
        if ".camvault-probe/" in request.url and request.method == "PUT":
            probes.append(request.url)

    client.meta.events.register("before-send.s3", count)
    return S3ObjectStore(client, settings), probes


def test_probe_result_is_cached_per_endpoint_and_bucket(
    seaweed: SeaweedFS, bucket: str, s3: Any, tmp_path: Path
) -> None:
    creds = (seaweed.access_key, seaweed.secret_key)
    cache = tmp_path / "s3-conditional-writes.json"
    store, probes = _store(seaweed.endpoint_url, bucket, creds)
    assert cached_conditional_writes(store, seaweed.endpoint_url, cache) is True
    assert len(probes) == 2  # two PUTs, the second refused with 412
    assert json.loads(cache.read_text())["supported"] is True

    again, probes_again = _store(seaweed.endpoint_url, bucket, creds)
    assert cached_conditional_writes(again, seaweed.endpoint_url, cache) is True
    assert probes_again == []  # answered from the cache

    other = "t-other-" + bucket[2:12]
    s3.create_bucket(Bucket=other)
    third, probes_third = _store(seaweed.endpoint_url, other, creds)
    assert cached_conditional_writes(third, seaweed.endpoint_url, cache) is True
    assert len(probes_third) == 2  # another bucket is probed afresh

    expired, probes_expired = _store(seaweed.endpoint_url, other, creds)
    assert cached_conditional_writes(expired, seaweed.endpoint_url, cache, ttl_seconds=0) is True
    assert len(probes_expired) == 2


def test_a_failed_probe_is_not_cached(tmp_path: Path) -> None:
    cache = tmp_path / "s3-conditional-writes.json"
    store, _ = _store("http://127.0.0.1:9", "nobucket", ("k", "s"))  # nothing listens
    assert cached_conditional_writes(store, "http://127.0.0.1:9", cache) is False
    assert not cache.exists()

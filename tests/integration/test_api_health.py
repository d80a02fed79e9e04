"""``/healthz``: ok/degraded per component for anyone, failure text only for admins,
cached so a flood costs no DB ping + S3 LIST per hit, probing inside ``[s3] prefix``."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import psycopg
import pytest

from camvault.embedded import SeaweedFS
from tests.faults.proxy import FaultProxy
from tests.integration.access_env import api_client, bearer, service_access


@pytest.fixture
def tokens(db_url: str) -> dict[str, str]:
    with service_access(db_url) as acc:
        acc.add_user("viewer")
        acc.add_user("boss", is_admin=True)
        return {n: acc.create_token(n)[0] for n in ("viewer", "boss")}


def test_unauthenticated_health_names_no_host_user_or_bucket(
    db_url: str, seaweed: SeaweedFS, tokens: dict[str, str]
) -> None:
    missing = "no-such-bucket-hz"
    with api_client(
        db_url,
        s3_endpoint=seaweed.endpoint_url,
        bucket=missing,
        credentials=(seaweed.access_key, seaweed.secret_key),
    ) as (c, _):
        anon = c.get("/healthz")
        viewer = c.get("/healthz", headers=bearer(tokens["viewer"]))
        junk = c.get("/healthz", headers=bearer("cvt_nonsense"))
        boss = c.get("/healthz", headers=bearer(tokens["boss"]))
    want = {"status": "degraded", "checks": {"database": "ok", "s3": "degraded"}}
    for r in (anon, viewer, junk):
        assert r.status_code == 503 and r.json() == want, r.text
        for secret in (missing, "127.0.0.1", str(seaweed.s3_port), "postgres"):
            assert secret not in r.text
    assert boss.status_code == 503 and boss.json()["checks"] == want["checks"]
    assert set(boss.json()["details"]) == {"s3"} and boss.json()["details"]["s3"]


def test_health_is_cached_for_a_flood(
    db_url: str, seaweed: SeaweedFS, bucket: str, s3: Any
) -> None:
    calls = {"database": 0, "s3": 0}

    def database() -> None:
        calls["database"] += 1
        with psycopg.connect(db_url) as conn:
            conn.execute("SELECT 1")

    def storage() -> None:
        calls["s3"] += 1
        s3.list_objects_v2(Bucket=bucket, Prefix="hz/", MaxKeys=1)

    def flood(ttl: float, n: int) -> set[int]:
        with api_client(
            db_url,
            s3_endpoint=seaweed.endpoint_url,
            bucket=bucket,
            credentials=(seaweed.access_key, seaweed.secret_key),
            api={"health_cache_seconds": ttl},
            health_checks={"database": database, "s3": storage},
        ) as (c, _):
            return {c.get("/healthz").status_code for _ in range(n)}

    assert flood(300, 50) == {200}
    assert calls == {"database": 1, "s3": 1}
    assert flood(0, 3) == {200}  # uncached: every hit probes (the counter counts)
    assert calls == {"database": 4, "s3": 4}


def test_s3_probe_lists_inside_the_configured_prefix(
    make_settings: Any, seaweed: SeaweedFS
) -> None:
    """A prefix-scoped IAM policy allows LIST only under ``[s3] prefix``: the probe must
    stay there. Read off the wire by a recording proxy in front of SeaweedFS."""
    from camvault.api.server import start_api
    from camvault.app import App

    with FaultProxy(("127.0.0.1", seaweed.s3_port), record=True) as proxy:
        settings = make_settings(s3={"prefix": "cctv/site-a", "endpoint_url": proxy.url})
        with App.open(settings) as app:
            server, stop = start_api(app, host="127.0.0.1", port=0)
            try:
                health = httpx.get(server.url + "/healthz")
            finally:
                stop()
        wire = b"".join(proxy.captured).decode("latin-1")
    assert health.status_code == 200, health.text
    lists = re.findall(r"GET /[^/ ?]+/?\?([^ ]*) HTTP", wire)
    prefixes = [unquote(parse_qs(q).get("prefix", [""])[0]) for q in lists if "list-type" in q]
    assert prefixes and all(p.startswith("cctv/site-a/") for p in prefixes), lists

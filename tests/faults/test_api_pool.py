"""Pool starvation: playbacks hanging on a stalled S3 must not hold pooled database
connections, so the rest of the API keeps answering (weakness 13).

Real pieces: PostgreSQL pool of ``POOL`` connections, the HEAD-backed playback gate on a
boto3 client whose S3 is a fault proxy in ``stall`` mode (accepts, never answers), uvicorn.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg

from camvault.api import ApiServices, create_app
from camvault.api.routes_restore import RestoreGate
from camvault.api.server import ApiServer
from camvault.catalog.access import AccessCatalog, RoleConnector
from camvault.catalog.connector import PsycopgConnector
from camvault.config import ApiSettings, S3Settings
from camvault.embedded import SeaweedFS
from camvault.glacier import S3Archive
from camvault.storage import S3ObjectStore, make_client
from tests.faults.proxy import FaultProxy
from tests.integration.access_env import (
    add_cameras,
    add_recordings,
    api_client,
    bearer,
    service_access,
)

POOL = 3
PLAYBACKS = POOL + 3


def _wait_for(what: str, cond: Any, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_stalled_s3_playbacks_leave_other_routes_answering(
    db_url: str, seaweed: SeaweedFS, bucket: str, s3_proxy: FaultProxy
) -> None:
    add_cameras(db_url, "lobby-1")
    recs = add_recordings(db_url, "lobby-1", PLAYBACKS, bucket=bucket)
    with service_access(db_url) as acc:
        acc.add_user("viewer")
        acc.add_grant(camera_id="lobby-1", user="viewer")
        token = acc.create_token("viewer")[0]
    viewer = bearer(token)

    connector = PsycopgConnector(db_url, max_size=POOL, application_name="camvault-api-fault")
    s3set = S3Settings(
        bucket=bucket,
        endpoint_url=s3_proxy.url,
        addressing_style="path",
        read_timeout_seconds=300,  # the HEADs hang until the proxy is cut below
    )
    client = make_client(s3set, credentials=(seaweed.access_key, seaweed.secret_key))
    access = AccessCatalog(RoleConnector(connector, "camvault_api"))
    services = ApiServices(
        access=access,
        store=S3ObjectStore(client, s3set),
        settings=ApiSettings(pool_max_size=POOL),
        gate=RestoreGate(S3Archive(client, bucket)),
    )
    server = ApiServer(create_app(services), "127.0.0.1", 0)
    url = server.start()
    pool = ThreadPoolExecutor(PLAYBACKS)
    try:
        s3_proxy.mode = "stall"
        hanging = [
            pool.submit(
                httpx.post, f"{url}/api/recordings/{r.id}/playback", headers=viewer, timeout=300
            )
            for r in recs
        ]
        # as many stalled HEADs as the pool has connections (enough to starve it before)
        _wait_for("HEADs stalled", lambda: len(s3_proxy.attempts("stall")) >= POOL)
        with httpx.Client(base_url=url, headers=viewer, timeout=120) as c:
            cams = c.get("/api/cameras")
            listing = c.get(
                "/api/cameras/lobby-1/recordings",
                params={"start": recs[0].start.isoformat(), "end": recs[-1].end.isoformat()},
            )
            meta = c.get(f"/api/recordings/{recs[0].id}")
        assert cams.status_code == 200, cams.text
        assert [x["id"] for x in cams.json()] == ["lobby-1"]
        assert listing.status_code == 200, listing.text
        assert [i["id"] for i in listing.json()["items"]] == [r.id for r in recs]
        assert meta.status_code == 200 and meta.json()["s3_key"] == recs[0].key
        # every playback reaches its HEAD: none is queued behind the others for a connection
        _wait_for("all HEADs stalled", lambda: len(s3_proxy.attempts("stall")) >= PLAYBACKS)
        still_hanging = sum(not f.done() for f in hanging)
        assert still_hanging == PLAYBACKS  # the answers above came while S3 was stalled
        # S3 cut: the hanging playbacks fail cleanly (503), and none was audited
        s3_proxy.mode = "refuse"
        s3_proxy.cut_all()
        answers = [f.result().status_code for f in hanging]
        assert answers == [503] * PLAYBACKS
        with psycopg.connect(db_url) as conn:
            played = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'playback'")
            assert played.fetchone() == (0,)
    finally:
        s3_proxy.cut_all()
        pool.shutdown(wait=True)
        server.stop()
        connector.close()


def test_database_down_while_authenticating_a_body_request_is_503(
    db_url: str, seaweed: SeaweedFS, bucket: str, pg_proxy: tuple[FaultProxy, str]
) -> None:
    """The gate authenticates when a route first reads its body; a database outage there
    is 503 (FastAPI would turn any other error raised while reading a body into 400)."""
    proxy, proxied_url = pg_proxy
    with service_access(db_url) as acc:
        acc.add_user("boss", is_admin=True)
        token = acc.create_token("boss")[0]
    with api_client(
        proxied_url,
        s3_endpoint=seaweed.endpoint_url,
        bucket=bucket,
        credentials=(seaweed.access_key, seaweed.secret_key),
    ) as (c, _):
        assert c.get("/api/users", headers=bearer(token)).status_code == 200
        proxy.mode = "refuse"
        proxy.cut_all()
        down = c.post("/api/users", json={"name": "carol"}, headers=bearer(token))
        assert down.status_code == 503 and set(down.json()) == {"detail", "field"}, down.text
        proxy.restore()
        up = c.post("/api/users", json={"name": "carol"}, headers=bearer(token))
        assert up.status_code == 201, up.text
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT name FROM users WHERE name = 'carol'").fetchall()
    assert rows == [("carol",)]

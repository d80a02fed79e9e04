"""Fleet endpoints on the real API (RLS as camvault_api): GET /api/nodes, camera admin."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from camvault.api.server import start_api
from camvault.app import App
from camvault.catalog import PsycopgConnector
from camvault.embedded import SeaweedFS
from camvault.fleet.store import FleetStore
from tests.integration.access_env import (
    add_cameras,
    add_recordings,
    api_client,
    bearer,
    service_access,
)


@pytest.fixture
def api(db_url: str, bucket: str, seaweed: SeaweedFS) -> Any:
    add_cameras(db_url, "used-1")
    add_recordings(db_url, "used-1", 1, bucket=bucket)
    with service_access(db_url) as acc:
        acc.add_user("viewer")
        acc.add_user("boss", is_admin=True)
        acc.add_grant(camera_id="used-1", user="viewer")
        tokens = {n: acc.create_token(n)[0] for n in ("viewer", "boss")}
    conn = PsycopgConnector(db_url)
    store = FleetStore(conn)
    store.heartbeat("n1", version="0.1", max_cameras=5, spool_depth=2, cameras_held=0,
                    last_error="")  # fmt: skip
    with api_client(
        db_url,
        s3_endpoint=seaweed.endpoint_url,
        bucket=bucket,
        credentials=(seaweed.access_key, seaweed.secret_key),
    ) as (client, _):
        yield client, tokens, store
    conn.close()


def test_admin_manages_cameras_and_sees_nodes(api: Any) -> None:
    c, tokens, store = api
    boss = bearer(tokens["boss"])
    r = c.post(
        "/api/cameras",
        json={"id": "gate-1", "url": "rtsp://u:topsecret@127.0.0.1/s", "segment_seconds": 60},
        headers=boss,
    )
    assert r.status_code == 201, r.text
    assert r.json()["url"] == "rtsp://u:***@127.0.0.1/s"  # never the password
    cam = store.get_camera("gate-1")
    assert cam is not None and cam.url == "rtsp://u:topsecret@127.0.0.1/s"
    r = c.patch("/api/cameras/gate-1", json={"enabled": False}, headers=boss)
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert store.claim("n1", 5, 30) == []  # disabled: nobody records it
    store.update_camera("gate-1", enabled=True)
    assert [c for c, _ in store.claim("n1", 5, 30)] == ["gate-1"]
    nodes = c.get("/api/nodes", headers=boss)
    assert nodes.status_code == 200, nodes.text
    (n1,) = nodes.json()
    assert (n1["node_id"], n1["cameras"], n1["max_cameras"], n1["spool_depth"]) == (
        "n1",
        ["gate-1"],
        5,
        2,
    )
    assert c.delete("/api/cameras/gate-1", headers=boss).status_code == 204
    assert store.get_camera("gate-1") is None


def test_errors_name_the_field_and_never_500(api: Any) -> None:
    c, tokens, _ = api
    boss, viewer = bearer(tokens["boss"]), bearer(tokens["viewer"])
    assert c.get("/api/nodes", headers=viewer).status_code == 403
    assert c.post("/api/cameras", json={"id": "x-1"}, headers=viewer).status_code == 403
    r = c.post("/api/cameras", json={"id": "x-1", "url": "http://nope"}, headers=boss)
    assert r.status_code == 422 and r.json()["field"] == "url"
    r = c.post("/api/cameras", json={"id": "bad id"}, headers=boss)
    assert r.status_code == 422 and r.json()["field"] == "id"
    r = c.post("/api/cameras", json={"id": "x-1", "segment_seconds": 0}, headers=boss)
    assert r.status_code == 422 and r.json()["field"] == "segment_seconds"
    assert c.patch("/api/cameras/nope-1", json={}, headers=boss).status_code == 404
    r = c.delete("/api/cameras/used-1", headers=boss)  # has footage: disable it instead
    assert r.status_code == 409 and r.json()["field"] == "camera_id"
    assert c.delete("/api/cameras/bad%20id", headers=boss).status_code == 422


def test_two_api_replicas_answer_alike(db_url: str, bucket: str, seaweed: SeaweedFS) -> None:
    """Stateless replicas: a page cursor from one replica continues on another, and a
    token works on both (nothing lives in one process's memory)."""
    add_cameras(db_url, "hall-1")
    add_recordings(db_url, "hall-1", 5, bucket=bucket)
    with service_access(db_url) as acc:
        acc.add_user("boss", is_admin=True)
        token = acc.create_token("boss")[0]
    kw: dict[str, Any] = {
        "s3_endpoint": seaweed.endpoint_url,
        "bucket": bucket,
        "credentials": (seaweed.access_key, seaweed.secret_key),
    }
    path = "/api/cameras/hall-1/recordings"
    query = {"start": "2000-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z", "limit": 2}
    with (
        api_client(db_url, api={"max_range_days": 40000}, **kw) as (a, _),
        api_client(db_url, api={"max_range_days": 40000}, **kw) as (b, _),
    ):
        first = a.get(path, params=query, headers=bearer(token))
        assert first.status_code == 200, first.text
        cursor = first.json()["next_cursor"]
        on_a = a.get(path, params={**query, "cursor": cursor}, headers=bearer(token)).json()
        on_b = b.get(path, params={**query, "cursor": cursor}, headers=bearer(token)).json()
    assert on_a == on_b
    assert [r["id"] for r in on_a["items"]] and on_a["items"][0]["id"] not in {
        r["id"] for r in first.json()["items"]
    }


@pytest.mark.parametrize(("lease", "age", "alive"), [(5, 10, False), (60, 20, True)])
def test_nodes_are_alive_by_the_configured_lease_time(
    make_settings: Any, db_url: str, lease: int, age: int, alive: bool
) -> None:
    """GET /api/nodes judges a heartbeat by `[node] lease_seconds`, like `camvault nodes`
    (either case fails with the default 15 s)."""
    settings = make_settings(node={"lease_seconds": lease}, api={"port": 0})
    with service_access(db_url) as acc:
        acc.add_user("boss", is_admin=True)
        token = acc.create_token("boss")[0]
    conn = PsycopgConnector(db_url)
    try:
        FleetStore(conn).heartbeat(
            "n1", version="0.1", max_cameras=0, spool_depth=0, cameras_held=0, last_error=""
        )
        with conn.transaction() as s:  # its last heartbeat `age` seconds ago, by the DB clock
            s.execute(
                "UPDATE nodes SET heartbeat_at = now() - make_interval(secs => %(age)s)",
                {"age": age},
            )
    finally:
        conn.close()
    with App.open(settings) as app:
        server, stop = start_api(app, host="127.0.0.1", port=0)
        try:
            r = httpx.get(f"{server.url}/api/nodes", headers=bearer(token), timeout=30)
        finally:
            stop()
    assert r.status_code == 200, r.text
    assert [(n["node_id"], n["alive"]) for n in r.json()] == [("n1", alive)]

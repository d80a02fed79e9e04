"""The fleet's catalog: nodes, camera leases, catalog-managed cameras, shared alert state.

Named queries in ``catalog/fleet.sql``; every statement is one short transaction through
the ``Connector`` (no lock held across a network wait), every time is the DB's ``now()``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from camvault.catalog.connector import Connector, Row
from camvault.catalog.queries import query
from camvault.errors import InputError, IntegrityViolation, NotFound
from camvault.keys import validate_camera_id

_SQL = "fleet.sql"
_FOREIGN_KEY_VIOLATION = "23503"
NODE_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # fullmatch: no trailing-newline hole


def validate_node_id(node_id: str) -> str:
    if not NODE_ID_RE.fullmatch(node_id):
        raise InputError(f"invalid node id {node_id!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    return node_id


def validate_camera_url(url: str) -> str:
    if not re.match(r"^rtsps?://[^\s/]+", url):
        raise InputError(f"camera url must be rtsp://host/…, not {url[:40]!r}")
    return url


@dataclass(frozen=True, slots=True)
class Held:
    """A lease this node holds, as renewed (or claimed) just now."""

    camera_id: str
    epoch: int
    url: str | None
    segment_seconds: int | None
    handoff_to: str | None = None
    # where the next holder may start: after the latest segment any holder placed of this
    # camera (as of its release or last renewal), and in a later second than that one
    # began (keys name segments by start second); None: not known
    last_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class Released:
    """A lease given up: passed on to an heir in the same transaction, or freed."""

    camera_id: str
    heir: str | None  # the node the lease passed to (a hand-off), None: free for anyone
    epoch: int  # the heir's fencing number (unchanged when freed)


@dataclass(frozen=True, slots=True)
class FleetView:
    """What a node sees of the fleet for balancing: live nodes, cameras, free leases, leases held
    per node."""

    live_nodes: int
    cameras: int
    free: int
    held: dict[str, int]  # node → live leases
    incoming: int = 0  # hand-offs to the asking node under way


@dataclass(frozen=True, slots=True)
class FleetCamera:
    """A catalog-managed camera with its RTSP URL (unmasked: this is the recorder's view)."""

    id: str
    name: str
    segment_seconds: int | None
    enabled: bool
    url: str | None
    created_at: datetime | None = None


def _camera(row: Row) -> FleetCamera:
    return FleetCamera(
        row["id"], row["name"], row["segment_seconds"], row["enabled"], row["url"],
        row["created_at"],
    )  # fmt: skip


class FleetStore:
    """The fleet's tables on a ``Connector``: nodes and heartbeats, camera leases (claim, renew,
    hand off, release) and catalog-managed cameras."""

    def __init__(self, connector: Connector) -> None:
        self._db = connector

    def _one(self, name: str, params: dict[str, Any]) -> Row | None:
        with self._db.transaction() as s:
            row: Row | None = s.fetchone(query(name, _SQL), params)
        return row

    def _all(self, name: str, params: dict[str, Any] | None = None) -> list[Row]:
        with self._db.transaction() as s:
            rows: list[Row] = s.fetchall(query(name, _SQL), params or {})
        return rows

    # nodes ---------------------------------------------------------------------------
    def node_started(self, node_id: str) -> None:
        with self._db.transaction() as s:
            s.execute(query("node_started", _SQL), {"node_id": node_id})

    def heartbeat(
        self,
        node_id: str,
        *,
        version: str,
        max_cameras: int,
        spool_depth: int,
        cameras_held: int,
        last_error: str,
    ) -> bool:
        """Register/refresh the node; returns whether an operator asked it to drain."""
        row = self._one(
            "heartbeat",
            {
                "node_id": node_id,
                "version": version,
                "max_cameras": max_cameras,
                "spool_depth": spool_depth,
                "cameras_held": cameras_held,
                "last_error": last_error[:500],
            },
        )
        return bool(row and row["draining"])

    def set_draining(self, node_id: str, draining: bool) -> None:
        if self._one("set_draining", {"node_id": node_id, "draining": draining}) is None:
            raise NotFound(f"no node {node_id!r}")

    def forget_node(self, node_id: str) -> None:
        if self._one("forget_node", {"node_id": node_id}) is None:
            raise NotFound(f"no node {node_id!r}")

    def nodes(self, ttl: float) -> list[Row]:
        return self._all("list_nodes", {"ttl": ttl})

    def leases(self) -> list[Row]:
        return self._all("list_leases")

    # leases --------------------------------------------------------------------------
    def renew(
        self, node_id: str, ttl: float, ends: Mapping[str, datetime] | None = None
    ) -> list[Held]:
        """Renew every live lease of ``node_id`` (one statement); ``ends``: by camera,
        where a next holder may start (kept as the lease's ``last_end``)."""
        cams = sorted(ends or {})
        params = {
            "node_id": node_id,
            "ttl": ttl,
            "cameras": cams,
            "ends": [ends[c] for c in cams] if ends else [],
        }
        with self._db.transaction() as s:
            rows = s.fetchall(query("renew", _SQL), params)
        return [
            Held(
                r["camera_id"],
                r["epoch"],
                r["url"] if r["enabled"] else None,
                r["segment_seconds"],
                r["handoff_to"],
                r["last_end"],
            )
            for r in rows
        ]

    def view(self, node_id: str, ttl: float) -> FleetView:
        row = self._one("fleet_view", {"ttl": ttl, "node_id": node_id})
        assert row is not None
        return FleetView(
            int(row["live_nodes"]),
            int(row["cameras"]),
            int(row["free"]),
            {str(k): int(v) for k, v in (row["held"] or {}).items()},
            int(row["incoming"]),
        )

    def claim(self, node_id: str, n: int, ttl: float) -> list[tuple[str, int]]:
        if n <= 0:
            return []
        with self._db.transaction() as s:  # lease rows of new cameras are made here
            s.execute(query("ensure_leases", _SQL))
            rows = s.fetchall(query("claim", _SQL), {"node_id": node_id, "n": n, "ttl": ttl})
        return [(r["camera_id"], int(r["epoch"])) for r in rows]

    def request_handoff(self, node_id: str, donor: str, n: int = 1) -> list[tuple[str, str | None]]:
        """Ask ``donor`` to hand ``n`` cameras over; returns their (camera id, url)."""
        rows = self._all("request_handoff", {"node_id": node_id, "donor": donor, "n": n})
        return [(str(r["camera_id"]), r["url"]) for r in rows]

    def claim_named(self, node_id: str, cameras: list[str], ttl: float) -> list[tuple[str, int]]:
        """Claim exactly these cameras where free (``camvault record``)."""
        if not cameras:
            return []
        with self._db.transaction() as s:
            s.execute(query("ensure_leases", _SQL))
            rows = s.fetchall(
                query("claim_named", _SQL),
                {"node_id": node_id, "cameras": list(cameras), "ttl": ttl},
            )
        return [(r["camera_id"], int(r["epoch"])) for r in rows]

    def release(
        self,
        node_id: str,
        camera_id: str,
        epoch: int,
        ttl: float,
        last_end: datetime | None = None,
    ) -> Released | None:
        """Give the lease up (None: it was not ours any more). Asked for by a live node, it
        passes to that node in the same transaction (``Released.heir``). ``last_end``: where
        the next holder's timeline may start (after our last segment of the camera)."""
        row = self._one(
            "release",
            {
                "node_id": node_id,
                "camera_id": camera_id,
                "epoch": epoch,
                "ttl": ttl,
                "last_end": last_end,
            },
        )
        return None if row is None else Released(row["camera_id"], row["heir"], int(row["epoch"]))

    # cameras -------------------------------------------------------------------------
    def upsert_camera(
        self,
        camera_id: str,
        *,
        name: str = "",
        url: str | None = None,
        segment_seconds: int | None = None,
        enabled: bool = True,
    ) -> FleetCamera:
        validate_camera_id(camera_id)
        if url is not None:
            validate_camera_url(url)
        row = self._one(
            "upsert_fleet_camera",
            {
                "id": camera_id,
                "name": name,
                "url": url,
                "segment_seconds": segment_seconds,
                "enabled": enabled,
            },
        )
        assert row is not None
        return _camera(row)

    def update_camera(
        self,
        camera_id: str,
        *,
        name: str | None = None,
        url: str | None = None,
        clear_url: bool = False,
        segment_seconds: int | None = None,
        enabled: bool | None = None,
    ) -> FleetCamera:
        validate_camera_id(camera_id)
        if url is not None:
            validate_camera_url(url)
        row = self._one(
            "update_fleet_camera",
            {
                "id": camera_id,
                "name": name,
                "url": url,
                "clear_url": clear_url,
                "segment_seconds": segment_seconds,
                "enabled": enabled,
            },
        )
        if row is None:
            raise NotFound(f"no camera {camera_id!r}")
        return _camera(row)

    def get_camera(self, camera_id: str) -> FleetCamera | None:
        row = self._one("get_fleet_camera", {"id": camera_id})
        return None if row is None else _camera(row)

    def cameras(self) -> list[FleetCamera]:
        return [_camera(r) for r in self._all("list_fleet_cameras")]

    def remove_camera(self, camera_id: str) -> None:
        """Delete a camera that has no recordings (one with footage can only be disabled:
        its rows and the audit trail refer to it)."""
        validate_camera_id(camera_id)
        try:
            row = self._one("delete_camera", {"id": camera_id})
        except IntegrityViolation as exc:
            if exc.sqlstate == _FOREIGN_KEY_VIOLATION:
                raise InputError(
                    f"camera {camera_id!r} has recordings or grants: disable it instead "
                    "(cameras set --disabled)"
                ) from None
            raise
        if row is None:
            raise NotFound(f"no camera {camera_id!r}")

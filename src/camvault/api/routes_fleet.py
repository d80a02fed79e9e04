"""Fleet endpoints (admin): the nodes, and cameras managed in the catalog.

Reads and writes run as the caller through row-level security (the fleet tables and
camera writes are admin-only there too). Camera URLs are returned with the password
masked; the recorder nodes read them from the catalog.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from camvault.api import params
from camvault.api.deps import AdminDep, Caller
from camvault.catalog.connector import Session
from camvault.errors import InputError
from camvault.fleet.store import FleetCamera, FleetStore
from camvault.recorder import mask_url

router = APIRouter(prefix="/api", tags=["fleet"])

CameraId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class _AsCaller:
    """A ``Connector`` whose transactions run as the API role on the caller's behalf."""

    def __init__(self, c: Caller) -> None:
        self._access = c.access

    @contextmanager
    def transaction(self, *, acting_user: int | None = None) -> Iterator[Session]:
        # the role connector itself (not AccessCatalog._tx, which maps a foreign-key
        # violation to "not found"): the fleet store branches on the SQLSTATE itself
        who = self._access.identity
        with self._access._db.transaction(acting_user=who.user_id if who else None) as s:
            yield s

    def close(self) -> None:
        pass


def _store(c: Caller) -> FleetStore:
    return FleetStore(_AsCaller(c))


class NodeOut(BaseModel):
    """One fleet node: liveness, cameras it records now, capacity, spool depth, last error."""

    node_id: str
    alive: bool
    draining: bool
    cameras: list[str]
    max_cameras: int
    spool_depth: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    last_error: str


class CameraIn(BaseModel):
    """A catalog-managed camera to add (or replace): id, name, RTSP URL, segment length, enabled."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    name: str = Field("", max_length=200)
    url: str | None = Field(None, max_length=2000, pattern=r"^rtsps?://\S+$")
    segment_seconds: int | None = Field(None, ge=1, le=3600)
    enabled: bool = True


class CameraPatch(BaseModel):
    """Changes to a camera; fields left out stay as they are (``clear_url`` removes the URL)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=200)
    url: str | None = Field(None, max_length=2000, pattern=r"^rtsps?://\S+$")
    clear_url: bool = False
    segment_seconds: int | None = Field(None, ge=1, le=3600)
    enabled: bool | None = None


class CameraOut(BaseModel):
    """A catalog-managed camera as an admin sees it; the URL's password is masked."""

    id: str
    name: str
    url: str | None  # password masked
    segment_seconds: int | None
    enabled: bool

    @classmethod
    def of(cls, cam: FleetCamera) -> CameraOut:
        return cls(
            id=cam.id,
            name=cam.name,
            url=mask_url(cam.url) if cam.url else None,
            segment_seconds=cam.segment_seconds,
            enabled=cam.enabled,
        )


@router.get("/nodes", response_model=list[NodeOut], responses={403: {"description": "admin only"}})
def list_nodes(c: AdminDep) -> list[NodeOut]:
    # "alive" by the configured lease time, as `camvault nodes` and the nodes themselves
    return [NodeOut(**_node(r)) for r in _store(c).nodes(c.svc.lease_seconds)]


def _node(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in NodeOut.model_fields}


@router.post("/cameras", response_model=CameraOut, status_code=201)
def add_camera(c: AdminDep, body: CameraIn) -> CameraOut:
    try:
        cam = _store(c).upsert_camera(
            body.id,
            name=body.name,
            url=body.url,
            segment_seconds=body.segment_seconds,
            enabled=body.enabled,
        )
    except InputError as exc:
        raise params.ApiError(400, str(exc), "url" if body.url else "id") from exc
    c.audit("camera.add", camera_id=cam.id, detail={"enabled": cam.enabled})
    return CameraOut.of(cam)


@router.patch("/cameras/{camera_id}", response_model=CameraOut)
def update_camera(c: AdminDep, camera_id: CameraId, body: CameraPatch) -> CameraOut:
    cam = _store(c).update_camera(
        camera_id,
        name=body.name,
        url=body.url,
        clear_url=body.clear_url,
        segment_seconds=body.segment_seconds,
        enabled=body.enabled,
    )
    c.audit("camera.update", camera_id=cam.id, detail={"enabled": cam.enabled})
    return CameraOut.of(cam)


@router.delete("/cameras/{camera_id}", status_code=204)
def remove_camera(c: AdminDep, camera_id: CameraId) -> Response:
    try:
        _store(c).remove_camera(camera_id)
    except InputError as exc:  # it has recordings or grants (NotFound is no InputError: 404)
        raise params.ApiError(409, str(exc), "camera_id") from exc
    c.audit("camera.remove", camera_id=camera_id)
    return Response(status_code=204)

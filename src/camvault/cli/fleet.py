"""``camvault nodes …`` and the catalog-managed side of ``camvault cameras …``."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from camvault.app import App
    from camvault.catalog.connector import Row
    from camvault.config import Settings
from camvault.cli import EXIT_OK, emit, json_flag


def register(sub: Any) -> None:
    nodes = sub.add_parser("nodes", help="the fleet: nodes, their cameras, drain")
    json_flag(nodes)
    nodes.set_defaults(handler=cmd_nodes)
    actions = nodes.add_subparsers(dest="nodes_command", metavar="ACTION")
    for name, text in (
        ("drain", "hand every camera of NODE to the others (in order), take no new ones"),
        ("undrain", "let NODE take cameras again"),
        ("forget", "remove a dead NODE from the list"),
    ):
        p = actions.add_parser(name, help=text)
        p.add_argument("node_id", metavar="NODE")
        json_flag(p)
        p.set_defaults(handler=cmd_node_action)


def register_camera_actions(cams: Any) -> None:
    """``cameras add/set/remove`` (called by ``cli.admin`` on its ``cameras`` parser)."""
    p = cams.add_parser("add", help="add or replace a camera")
    p.add_argument("camera_id", metavar="CAM")
    p.add_argument("--name", default="")
    p.add_argument("--url", help="RTSP source: the fleet records it (omit for drop-in)")
    p.add_argument("--segment-seconds", type=int)
    p.add_argument("--disabled", action="store_true")
    json_flag(p)
    p.set_defaults(handler=cmd_cameras_add)
    p = cams.add_parser("set", help="change a camera (only the options given)")
    p.add_argument("camera_id", metavar="CAM")
    p.add_argument("--name")
    p.add_argument("--url")
    p.add_argument("--no-url", action="store_true", help="stop recording it (drop-in only)")
    p.add_argument("--segment-seconds", type=int)
    on = p.add_mutually_exclusive_group()
    on.add_argument("--enabled", dest="enabled", action="store_const", const=True)
    on.add_argument("--disabled", dest="enabled", action="store_const", const=False)
    json_flag(p)
    p.set_defaults(handler=cmd_cameras_set)
    p = cams.add_parser("remove", help="delete a camera without recordings")
    p.add_argument("camera_id", metavar="CAM")
    json_flag(p)
    p.set_defaults(handler=cmd_cameras_remove)


def _camera_out(cam: Any) -> dict[str, Any]:
    from camvault.recorder import mask_url

    d = asdict(cam)
    d["url"] = mask_url(cam.url) if cam.url else None  # never print a camera password
    return d


def _segment_seconds(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= 3600:
        from camvault.errors import InputError

        raise InputError("--segment-seconds must be between 1 and 3600")
    return value


def cmd_cameras_add(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.fleet.store import FleetStore

    with App.open(settings) as app:
        cam = FleetStore(app.connector).upsert_camera(
            args.camera_id,
            name=args.name,
            url=args.url,
            segment_seconds=_segment_seconds(args.segment_seconds),
            enabled=not args.disabled,
        )
    emit(args, _camera_out(cam), lambda: print(f"camera {cam.id} ({cam.name or 'no name'}) saved"))
    return EXIT_OK


def cmd_cameras_set(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.fleet.store import FleetStore

    with App.open(settings) as app:
        cam = FleetStore(app.connector).update_camera(
            args.camera_id,
            name=args.name,
            url=args.url,
            clear_url=args.no_url,
            segment_seconds=_segment_seconds(args.segment_seconds),
            enabled=args.enabled,
        )
    emit(args, _camera_out(cam), lambda: print(f"camera {cam.id} updated"))
    return EXIT_OK


def cmd_cameras_remove(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.fleet.store import FleetStore

    with App.open(settings) as app:
        FleetStore(app.connector).remove_camera(args.camera_id)
    emit(args, {"removed": args.camera_id}, lambda: print(f"camera {args.camera_id} removed"))
    return EXIT_OK


def cmd_nodes(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.fleet.store import FleetStore

    with App.open(settings) as app:
        rows = FleetStore(app.connector).nodes(settings.fleet.lease_seconds)

    def human() -> None:
        print(
            f"{'NODE':<20} {'STATE':<9} {'CAMS':>4} {'MAX':>4} {'SPOOL':>5} "
            f"{'HEARTBEAT (UTC)':<19} {'VERSION':<8} CAMERAS / LAST ERROR"
        )
        for n in rows:
            state = "draining" if n["draining"] else ("up" if n["alive"] else "DOWN")
            print(
                f"{n['node_id']:<20} {state:<9} {len(n['cameras']):>4} "
                f"{n['max_cameras'] or '-':>4} {n['spool_depth']:>5} "
                f"{n['heartbeat_at']:%Y-%m-%d %H:%M:%S} {n['version']:<8} "
                + ",".join(n["cameras"])
                + (f"  ! {n['last_error']}" if n["last_error"] else "")
            )

    emit(args, rows, human)
    return EXIT_OK


def cmd_node_action(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.fleet.store import FleetStore, validate_node_id

    node = validate_node_id(args.node_id)
    with App.open(settings) as app:
        store = FleetStore(app.connector)
        if args.nodes_command == "forget":
            store.forget_node(node)
        else:
            store.set_draining(node, args.nodes_command == "drain")
    emit(args, {"node": node, "action": args.nodes_command}, lambda: print(f"{node}: ok"))
    return EXIT_OK


def lease_status(app: App) -> list[Row]:
    """Which node holds which camera (for ``camvault status``)."""
    from camvault.fleet.store import FleetStore

    return FleetStore(app.connector).leases()


def print_leases(rows: list[Row]) -> None:
    for r in rows:
        if not r["recordable"]:
            continue
        who = r["holder"] if r["live"] and r["holder"] else "UNHELD"
        print(f"  {r['camera_id']:<24} held by {who}" + ("" if r["enabled"] else " (disabled)"))

"""Sub-commands for operators: ``db migrate``, ``cameras``, ``recordings``, ``status``."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from camvault.cli import EXIT_OK, emit, json_flag, parse_time
from camvault.cli.fleet import register_camera_actions
from camvault.errors import CamvaultError, InvalidTimeRange, NotFound, SpoolError
from camvault.keys import validate_camera_id

if TYPE_CHECKING:
    from camvault.config import Settings


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="catalog database").add_subparsers(
        dest="db_command", required=True, metavar="ACTION"
    )
    p = db.add_parser("migrate", help="apply pending schema migrations (idempotent)")
    json_flag(p)
    p.set_defaults(handler=cmd_migrate)

    cams = sub.add_parser("cameras", help="cameras in the catalog").add_subparsers(
        dest="cameras_command", required=True, metavar="ACTION"
    )
    register_camera_actions(cams)  # add / set / remove (with the RTSP url): cli.fleet
    p = cams.add_parser("list", help="list cameras")
    json_flag(p)
    p.set_defaults(handler=cmd_cameras_list)

    recs = sub.add_parser("recordings", help="recordings in the catalog").add_subparsers(
        dest="recordings_command", required=True, metavar="ACTION"
    )
    p = recs.add_parser("list", help="a camera's recordings overlapping a time range")
    p.add_argument("--camera", required=True)
    p.add_argument("--start", type=parse_time, help="ISO 8601 (default: 24 h before --end)")
    p.add_argument("--end", type=parse_time, help="ISO 8601 (default: now)")
    p.add_argument("--limit", type=int, default=1000)
    json_flag(p)
    p.set_defaults(handler=cmd_recordings_list)

    p = sub.add_parser("status", help="spool depth, oldest pending, last upload per camera")
    json_flag(p)
    p.set_defaults(handler=cmd_status)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import database_url
    from camvault.catalog.migrate import migrate

    applied = migrate(
        database_url(settings), partitions_ahead_months=settings.database.partitions_ahead_months
    )
    emit(
        args,
        {"applied": applied},
        lambda: print(
            "applied: " + ", ".join(applied) if applied else "catalog schema is up to date"
        ),
    )
    return EXIT_OK


def cmd_cameras_list(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App

    with App.open(settings) as app:
        cams = app.catalog.list_cameras()

    def human() -> None:
        print(f"{'ID':<24} {'NAME':<32} {'SEGMENT':>8} ENABLED")
        for c in cams:
            seg = f"{c.segment_seconds}s" if c.segment_seconds else "default"
            print(f"{c.id:<24} {c.name:<32} {seg:>8} {'yes' if c.enabled else 'no'}")

    emit(args, [asdict(c) for c in cams], human)
    return EXIT_OK


def time_range(
    start: datetime | None, end: datetime | None, default_span: timedelta = timedelta(hours=24)
) -> tuple[datetime, datetime]:
    end = end or datetime.now(UTC)
    start = start or end - default_span
    if end <= start:
        raise InvalidTimeRange(f"--end {end.isoformat()} must be after --start {start.isoformat()}")
    return start, end


def cmd_recordings_list(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App

    validate_camera_id(args.camera)
    start, end = time_range(args.start, args.end)
    if not 1 <= args.limit <= 100_000:
        raise InvalidTimeRange("--limit must be between 1 and 100000")
    with App.open(settings) as app:
        if app.catalog.get_camera(args.camera) is None:
            raise NotFound(f"no camera {args.camera!r} in the catalog")
        recs = app.catalog.list_recordings(args.camera, start, end, args.limit)

    def human() -> None:
        print(f"{'START (UTC)':<20} {'END (UTC)':<20} {'DUR':>7} {'SIZE':>9} {'CODEC':<5} KEY")
        for r in recs:
            print(
                f"{r.start_time:%Y-%m-%d %H:%M:%S} {r.end_time:%Y-%m-%d %H:%M:%S} "
                f"{r.duration_seconds:>6.1f}s {r.size_bytes / 1e6:>7.1f}MB {r.codec:<5} "
                f"s3://{r.s3_bucket}/{r.s3_key}"
            )
        print(
            f"{len(recs)} recording(s) from {start:%Y-%m-%d %H:%M:%S} to "
            f"{end:%Y-%m-%d %H:%M:%S} UTC"
        )

    emit(args, [asdict(r) for r in recs], human)
    return EXIT_OK


UPLOAD_ERRORS_WINDOW = timedelta(hours=24)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.attempt_log import AttemptJournal
    from camvault.catalog.attempts import AttemptCatalog
    from camvault.catalog.runs import CatalogRunLog
    from camvault.cli.fleet import lease_status, print_leases

    with App.open(settings) as app:
        stats = app.spool.stats()
        space = app.disk_space()
        try:  # status must answer also when the spool disk is full
            journal = AttemptJournal(settings.spool.dir)
            try:
                stats["unflushed_attempts"] = journal.count_unsynced()
            finally:
                journal.close()
        except SpoolError as exc:
            stats["unflushed_attempts"] = None
            stats["attempt_journal_error"] = str(exc)
        attempts = AttemptCatalog(app.connector)
        try:
            last = app.catalog.last_recording_per_camera()
            cameras = CatalogRunLog(app.connector, settings.node).statuses()
            errors = attempts.per_camera(datetime.now(UTC) - UPLOAD_ERRORS_WINDOW)
            recent = attempts.recent(limit=10)
            leases = lease_status(app)
            catalog_error = None
        except CamvaultError as exc:  # status must still show the spool when the DB is down
            last, cameras, errors, recent, leases = [], [], [], [], []
            catalog_error = str(exc)
    data = {
        "leases": leases,
        "spool": stats,
        "last_upload_per_camera": last,
        "recorders": cameras,
        "upload_errors": {
            "window_hours": UPLOAD_ERRORS_WINDOW.total_seconds() / 3600,
            "per_camera": errors,
            "recent": recent,
        },
        "catalog_error": catalog_error,
        "spool_disk": space.as_dict(),
    }

    def human() -> None:
        print_leases(leases)  # which node records which camera
        by = stats["by_state"]
        print("spool: " + ", ".join(f"{k} {v}" for k, v in by.items()))
        print(
            f"pending: {stats['pending']} segment(s), {stats['pending_bytes'] / 1e6:.1f} MB; "
            f"oldest pending since {stats['oldest_pending'] or '-'}"
        )
        print(
            f"quarantined: {stats['quarantined']}; "
            f"upload errors not yet in the catalog: {stats['unflushed_errors']}"
        )
        print(("LOW SPACE: " if space.low else "") + space.describe())
        if catalog_error:
            print(f"catalog: UNAVAILABLE: {catalog_error}")
        for row in last:
            print(
                f"  {row['camera_id']:<24} last segment {row['start_time']:%Y-%m-%d %H:%M:%S}"
                f" UTC, committed {row['created_at']:%Y-%m-%d %H:%M:%S} UTC"
            )
        if errors:
            print(
                "failed upload attempts, last 24 h "
                f"(not yet in the catalog: {stats['unflushed_attempts']}):"
            )
        for row in errors:
            print(
                f"  {row['camera_id']:<24} {row['failed_attempts']} failed attempt(s), "
                f"{row['recovered_by_retry']} recovered by a retry, "
                f"{row['failed_rounds']} round(s) failed; last "
                f"{row['last_error_at']:%Y-%m-%d %H:%M:%S} UTC ({row['last_error_class']})"
            )
        for row in cameras:  # RTSP cameras: "recording since …" / "offline since …"
            print(
                f"  {row['camera_id']:<24} {row['state']} since "
                f"{row['since']:%Y-%m-%d %H:%M:%S} UTC"
                + (f" ({row['detail']})" if row["detail"] else "")
            )

    emit(args, data, human)
    return EXIT_OK

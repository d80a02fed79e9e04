"""Sub-commands for the bucket's lifecycle: ``bucket apply``, ``retention sync``,
``restore request|status``."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from camvault.cli import EXIT_OK, EXIT_PARTIAL, emit, json_flag, os_actor

# = camvault.restore.TIERS, spelled out so that building the parser imports nothing heavy
TIERS = ("Expedited", "Standard", "Bulk")

if TYPE_CHECKING:
    from camvault.app import App
    from camvault.bucket import ApplyReport
    from camvault.config import Settings
    from camvault.restore import RestoreService
    from camvault.retention import SyncReport


def register(sub: Any) -> None:
    p = sub.add_parser("bucket", help="bucket hardening and lifecycle rules")
    bsub = p.add_subparsers(dest="bucket_command", required=True, metavar="ACTION")
    a = bsub.add_parser(
        "apply",
        help="create/harden the bucket and set lifecycle rules from [lifecycle] (idempotent)",
    )
    a.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    a.add_argument(
        "--allow-partial",
        action="store_true",
        help="exit 0 even if the backend refused some rules (they are still reported)",
    )
    json_flag(a)
    a.set_defaults(handler=cmd_bucket_apply)

    p = sub.add_parser("retention", help="keep the catalog in step with lifecycle rules")
    rsub = p.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    s = rsub.add_parser(
        "sync",
        help="confirm storage classes, tombstone rows of deleted objects, report drift",
    )
    s.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    json_flag(s)
    s.set_defaults(handler=cmd_retention_sync)

    p = sub.add_parser("restore", help="restore archived (Glacier) recordings")
    ssub = p.add_subparsers(dest="restore_command", required=True, metavar="ACTION")
    r = ssub.add_parser("request", help="ask S3 to restore a recording's object")
    r.add_argument("recording_id", type=int)
    r.add_argument("--tier", choices=TIERS, help="default: [lifecycle] restore_tier")
    r.add_argument("--days", type=int, help="default: [lifecycle] restore_days")
    json_flag(r)
    r.set_defaults(handler=cmd_restore_request)
    r = ssub.add_parser("status", help="restore state of a recording (polls S3)")
    r.add_argument("recording_id", type=int)
    json_flag(r)
    r.set_defaults(handler=cmd_restore_status)


def _client(settings: Settings) -> tuple[Any, Any]:
    from camvault.app import s3_client

    return s3_client(settings)


def cmd_bucket_apply(settings: Settings, args: argparse.Namespace) -> int:
    from camvault import lifecycle
    from camvault.app import App
    from camvault.bucket import BucketAdmin, apply_bucket
    from camvault.wiring import bucket_spec

    client, s3 = _client(settings)
    spec = bucket_spec(s3, settings.lifecycle)
    known = {c.id for c in settings.cameras}
    policy = spec.retention
    if any(lifecycle.outlives(policy.default, r) for _, r in policy.cameras):
        # the default rule is written per camera: every camera the catalog knows counts
        with App.open(settings) as app:
            known |= {c.id for c in app.catalog.list_cameras()}
    report = apply_bucket(
        BucketAdmin(client, s3.bucket), spec, known_cameras=known, dry_run=args.dry_run
    )
    emit(args, report.as_dict(), lambda: _print_apply(report))
    return EXIT_PARTIAL if report.partial and not args.allow_partial else EXIT_OK


_MARK = {
    "unchanged": "=",
    "created": "+",
    "updated": "~",
    "planned": "?",
    "rejected": "✗",
    "skipped": "✗",
}


def _print_apply(report: ApplyReport) -> None:
    head = "would change" if report.dry_run else "bucket"
    print(f"{head} s3://{report.bucket}:")
    for c in report.changes:
        action = "would set" if c.action == "planned" else c.action
        print(f"  {_MARK[c.action]} {c.item}: {action}" + (f" — {c.detail}" if c.detail else ""))
    for w in report.warnings:
        print(f"  warning: {w}")
    failed = [c for c in report.changes if c.failed]
    if failed:
        print(
            f"NOT APPLIED: {len(failed)} item(s) above marked ✗ are not in force",
            file=sys.stderr,
        )
    elif not report.changed:
        print("  nothing to change")


def cmd_retention_sync(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.bucket import BucketAdmin
    from camvault.catalog.lifecycle_catalog import LifecycleCatalog
    from camvault.errors import StorageUnsupported
    from camvault.glacier import S3Archive
    from camvault.restore import RestoreService
    from camvault.retention import RetentionSync
    from camvault.wiring import retention_policy

    client, s3 = _client(settings)
    admin = BucketAdmin(client, s3.bucket)
    warnings: list[str] = []

    def rules_in_force() -> list[dict[str, Any]]:
        try:
            return admin.get_lifecycle()
        except StorageUnsupported as exc:
            warnings.append(f"backend cannot report lifecycle rules ({exc}): none assumed")
            return []

    with App.open(settings) as app:
        catalog = LifecycleCatalog(app.connector)
        archive = S3Archive(client, s3.bucket)
        report = RetentionSync(
            catalog,
            archive,
            rules_in_force,
            retention_policy(settings.lifecycle),
            drift_grace=timedelta(days=settings.lifecycle.drift_grace_days),
            prefix=s3.prefix,
        ).run(dry_run=args.dry_run)
        if not args.dry_run:
            report.restores_refreshed = RestoreService(catalog, archive).poll_pending()
    report.warnings += warnings
    emit(args, report.as_dict(), lambda: _print_sync(report, args.dry_run))
    return EXIT_OK


def _print_sync(report: SyncReport, dry_run: bool) -> None:
    verb = "would tombstone" if dry_run else "tombstoned"
    print(
        f"checked {report.checked} recording(s): {report.updated} updated, "
        f"{verb} {report.tombstoned_expired} expired + {report.tombstoned_vanished} vanished; "
        f"{report.untracked_objects} object(s) without a row; "
        f"{report.restores_refreshed} restore(s) changed state"
    )
    for d in report.drift:
        print(f"  drift {d.kind}: {d.key}: {d.detail}")
    for w in report.warnings:
        print(f"  warning: {w}")
    if not report.drift:
        print("  no drift")


def _restorer(settings: Settings, app: App) -> RestoreService:
    from camvault.catalog.lifecycle_catalog import LifecycleCatalog
    from camvault.glacier import S3Archive
    from camvault.restore import RestoreService

    client, s3 = _client(settings)
    return RestoreService(
        LifecycleCatalog(app.connector),
        S3Archive(client, s3.bucket),
        tier=settings.lifecycle.restore_tier,
        days=settings.lifecycle.restore_days,
    )


def cmd_restore_request(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.restore import Actor

    with App.open(settings) as app:
        st = _restorer(settings, app).request(
            args.recording_id, Actor(label=os_actor()), tier=args.tier, days=args.days
        )
    emit(args, st.as_dict(), lambda: print(f"recording {st.recording_id}: {st.status}"))
    return EXIT_OK


def cmd_restore_status(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App

    with App.open(settings) as app:
        st = _restorer(settings, app).status(args.recording_id)
    emit(
        args,
        st.as_dict(),
        lambda: print(
            f"recording {st.recording_id}: {st.storage_class}, {st.status}"
            + (f" until {st.restored_until:%Y-%m-%d %H:%M}Z" if st.restored_until else "")
        ),
    )
    return EXIT_OK

"""``camvault reconcile``: drain the reprocessing queue, rebuild orphaned rows, flag rows
whose object is gone. ``--dry-run`` reports without writing anything."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camvault.cli import EXIT_OK, EXIT_PARTIAL, emit, json_flag

if TYPE_CHECKING:
    from camvault.config import Settings
    from camvault.reconcile import ReconcileReport


def register(sub: Any) -> None:
    p = sub.add_parser(
        "reconcile",
        help="commit the reprocessing queue, rebuild missing rows from S3, flag lost objects",
    )
    p.add_argument("--dry-run", action="store_true", help="report only; change nothing")
    p.add_argument("--no-orphans", action="store_true", help="skip the orphan scan")
    p.add_argument("--no-missing", action="store_true", help="skip the missing-object scan")
    p.add_argument(
        "--inventory",
        type=Path,
        metavar="CSV",
        help="read the object list from an S3 Inventory CSV instead of listing the bucket",
    )
    json_flag(p)
    p.set_defaults(handler=cmd_reconcile)


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.reconcile import Reconciler, inventory_keys

    with App.open(settings) as app:
        store = app.store()
        pipeline = app.pipeline()
        reconciler = Reconciler(
            app.catalog,
            app.connector,
            store,
            prefix=settings.s3.prefix,
            pending_commits=lambda: app.spool.due_commits(ignore_delay=True),
            commit=pipeline.commit,
        )
        keys = None
        if args.inventory is not None:
            keys = inventory_keys(args.inventory, store.bucket, settings.s3.prefix)
        report = reconciler.run(
            dry_run=args.dry_run,
            keys=keys,
            orphans=not args.no_orphans,
            missing=not args.no_missing,
        )
    emit(args, _as_dict(report), lambda: _print(report))
    return EXIT_OK if report.clean else EXIT_PARTIAL


def _as_dict(r: ReconcileReport) -> dict[str, Any]:
    return {
        "dry_run": r.dry_run,
        "queue_committed": r.queue_committed,
        "queue_remaining": r.queue_remaining,
        "objects_scanned": r.objects_scanned,
        "rows_scanned": r.rows_scanned,
        "foreign_keys": r.foreign_keys,
        "orphans": r.orphans,
        "rebuilt": r.rebuilt,
        "unrebuildable": [{"key": k, "reason": why} for k, why in r.unrebuildable],
        "missing": r.missing,
        "mismatched": [{"key": k, "reason": why} for k, why in r.mismatched],
        "clean": r.clean,
    }


def _print(r: ReconcileReport) -> None:
    would = "would " if r.dry_run else "did "
    print(
        f"reprocessing queue: {r.queue_committed} committed, {r.queue_remaining} "
        f"{'pending' if r.dry_run else 'still failing'}"
    )
    print(
        f"scanned {r.objects_scanned} object(s) and {r.rows_scanned} row(s)"
        + (f"; {r.foreign_keys} non-camvault key(s) ignored" if r.foreign_keys else "")
    )
    fixed = len(r.orphans) - len(r.unrebuildable) if r.dry_run else len(r.rebuilt)
    print(f"orphans (object, no row): {len(r.orphans)}; {would}rebuild: {fixed}")
    for key in r.orphans:
        print(f"  + {key}")
    for key, why in r.unrebuildable:
        print(f"  ! {key}: {why}")
    if r.mismatched:
        print(f"key/metadata mismatch (never inserted): {len(r.mismatched)}")
    for key, why in r.mismatched:
        print(f"  ✗ {key}: {why}")
    print(f"missing objects (row, no object): {len(r.missing)}")
    for key in r.missing:
        print(f"  - {key}")

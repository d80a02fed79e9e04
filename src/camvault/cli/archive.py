"""Sub-commands that move footage: ``ingest``, ``upload``, ``run``."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camvault.cli import EXIT_OK, EXIT_PARTIAL, emit, json_flag, parse_time
from camvault.errors import InputError

if TYPE_CHECKING:
    from camvault.app import App
    from camvault.config import Settings
    from camvault.ingest import Ingestor, IngestResult
    from camvault.models import Segment
    from camvault.spool import Spool
    from camvault.wiring import IngestConfig


def register(sub: Any) -> None:
    p = sub.add_parser("ingest", help="validate segment files and add them to the spool")
    p.add_argument("--camera", help="camera id the files belong to")
    p.add_argument(
        "--start", type=parse_time, help="start time of the (single) file, ISO 8601 with zone"
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="watch the drop_dir of every configured camera (or --camera) until Ctrl-C",
    )
    p.add_argument(
        "--upload",
        action="store_true",
        help="also upload and commit them now, while the next files are probed "
        "(like `upload --once`; not while an uploader runs on this spool)",
    )
    p.add_argument("files", nargs="*", type=Path, metavar="FILE")
    json_flag(p)
    p.set_defaults(handler=cmd_ingest, fast=fast_ingest, fast_exit=True)

    p = sub.add_parser("upload", help="upload spooled segments and commit them to the catalog")
    p.add_argument(
        "--once",
        action="store_true",
        help="try every pending segment now (ignoring redrive delays), then exit",
    )
    p.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="wait this long for another uploader (e.g. `run` shutting down) to release the "
        "spool (default 60; 0 = fail at once)",
    )
    json_flag(p)
    p.set_defaults(handler=cmd_upload, fast_exit=True)

    p = sub.add_parser("run", help="everything on one node (embedded servers if unconfigured)")
    p.add_argument(
        "--no-demo", action="store_true", help="no synthetic demo camera even on embedded defaults"
    )
    p.add_argument("--demo-segment-seconds", type=int, default=10)
    p.set_defaults(handler=cmd_run)


def _check_ingest_args(args: argparse.Namespace) -> None:
    if not args.camera or not args.files:
        raise InputError("ingest needs --camera CAM and at least one FILE (or --watch)")
    if args.start is not None and len(args.files) > 1:
        raise InputError("--start applies to one file; pass one FILE")


def fast_ingest(args: argparse.Namespace) -> int | None:
    """``ingest --camera CAM FILE…`` of a camera listed in the config: the plain values
    from ``config_snapshot`` (no pydantic once the config has been validated), no catalog,
    no S3. None (= the full path, ``cmd_ingest``) for --watch, --upload or another camera."""
    if args.watch or args.upload:
        return None
    from camvault.config_snapshot import load_ingest_config

    cfg = load_ingest_config(args.config)  # a config error first, as in every command
    _check_ingest_args(args)
    if args.camera not in cfg.camera_ids:
        return None  # the catalog must say whether the camera exists
    return _ingest(cfg, args, lambda camera_id: False)


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    if args.watch:
        return _watch(settings, args)
    _check_ingest_args(args)
    from camvault.wiring import IngestConfig

    with ExitStack() as stack:
        app: list[App] = []
        app_lock = threading.Lock()

        def catalog_has_camera(camera_id: str) -> bool:
            # only for a camera missing from the config: then (and only then) psycopg
            with app_lock:
                if not app:
                    from camvault.app import App

                    app.append(stack.enter_context(App.open(settings)))
            return app[0].catalog.get_camera(camera_id) is not None

        return _ingest(
            IngestConfig.from_settings(settings), args, catalog_has_camera, settings=settings
        )


def _ingest(
    cfg: IngestConfig,
    args: argparse.Namespace,
    catalog_has_camera: Callable[[str], bool],
    *,
    settings: Settings | None = None,  # for --upload
) -> int:
    from camvault.wiring import make_ingestor, open_spool, own_spool

    with ExitStack() as stack:
        spool = open_spool(cfg)
        stack.callback(spool.close)
        upload = None
        if args.upload and settings is not None:
            own_spool(cfg, spool)  # here, before any admit (see wiring.own_spool)
            upload = _BackgroundUpload(settings, args, spool)
        try:
            results = _ingest_files(make_ingestor(cfg, spool, catalog_has_camera), args)
        finally:
            if upload is not None:
                upload.finish()
    if upload is None:
        emit(args, _ingest_data(results), lambda: None)
        return EXIT_OK if all(r.ok for r in results) else EXIT_PARTIAL
    return upload.report(results)


def _ingest_files(ingestor: Ingestor, args: argparse.Namespace) -> list[IngestResult]:
    def one(path: Path) -> IngestResult:
        return ingestor.ingest(path, args.camera, start=args.start)

    # probing and hashing release the GIL: a few files at a time use the cores while
    # the output keeps the order of the arguments. With --upload, one at a time: probing
    # keeps well ahead of the uploads anyway, and a second prober only takes the GIL from
    # the uploader's start-up (imports, S3 client), delaying the first PUT by ~0.2 s
    workers = 1 if args.upload else min(len(args.files), os.cpu_count() or 1, 4)
    if workers == 1:  # in this thread: a camera script's one file needs no pool
        return _print_results(args, map(one, args.files))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="ingest") as pool:
        return _print_results(args, pool.map(one, args.files))


def _print_results(args: argparse.Namespace, done: Iterator[IngestResult]) -> list[IngestResult]:
    results = []
    for path, r in zip(args.files, done, strict=True):
        results.append(r)
        if args.json:
            continue
        if r.segment:
            print(
                f"spooled    {path}  →  {r.segment.s3_key}  "
                f"({r.segment.codec} {r.segment.width}x{r.segment.height}, "
                f"{r.segment.duration_seconds:.1f} s)",
                flush=True,
            )
        else:
            print(f"quarantined {path}: {r.reason}  (moved to {r.quarantined_to})")
    return results


def _ingest_data(results: list[IngestResult]) -> list[dict[str, Any]]:
    return [
        {
            "file": str(r.source),
            "ok": r.ok,
            "s3_key": r.segment.s3_key if r.segment else None,
            "segment_id": r.segment.id if r.segment else None,
            "reason": r.reason,
            "quarantined_to": str(r.quarantined_to) if r.quarantined_to else None,
        }
        for r in results
    ]


class _BackgroundUpload:
    """``ingest --upload``: the uploader drains the spool in a thread while the files are
    probed and hashed — `ingest` then `upload --once`, overlapped in one process. Even its
    set-up (boto3/psycopg imports, S3 client, catalog pool) overlaps the first probes."""

    def __init__(self, settings: Settings, args: argparse.Namespace, spool: Spool) -> None:
        self._settings = settings
        self._args = args
        self._spool = spool  # shared: its admits wake the uploader at once
        self._more = threading.Event()
        self._error: BaseException | None = None
        self.tally: Any = None
        self.pending = 0
        self._thread = threading.Thread(target=self._run, name="upload")
        self._thread.start()

    def _run(self) -> None:
        try:
            from camvault.app import App

            # the main thread owns the spool (lock, recovery) and closes it
            app = App.open(self._settings, spool=self._spool)
            try:
                pipeline = app.pipeline(on_event=None if self._args.json else progress_printer())
                pipeline.drain(more=self._more)
                self.tally = pipeline.tally
                self.pending = app.spool.stats()["pending"]
            finally:
                app.connector.close()
        except BaseException as exc:  # re-raised in the main thread by finish()
            self._error = exc

    def finish(self) -> None:
        self._more.set()
        self._spool.wake_uploaders()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def report(self, results: list[IngestResult]) -> int:
        tally, pending = self.tally, self.pending
        data = {
            "files": _ingest_data(results),
            "committed": tally.committed,
            "bytes": tally.bytes,
            "failed_rounds": tally.failed_rounds,
            "conflicts": tally.conflicts,
            "last_error": tally.last_error,
            "pending": pending,
        }
        emit(
            self._args,
            data,
            lambda: print(
                f"committed {tally.committed} segment(s), {tally.bytes / 1e6:.1f} MB; "
                f"{pending} still pending"
                + (f"; last error: {tally.last_error}" if tally.last_error else "")
            ),
        )
        ok = all(r.ok for r in results) and pending == 0
        return EXIT_OK if ok else EXIT_PARTIAL


def progress_printer(stream: Any = sys.stderr) -> Any:
    def on_event(kind: str, seg: Segment, detail: str) -> None:
        if kind == "committed":
            print(f"  ✓ {seg.s3_key} ({seg.size_bytes / 1e6:.1f} MB, {detail})", file=stream)
        elif kind in ("round_failed", "conflict", "commit_deferred"):
            print(f"  ✗ {seg.s3_key}: {kind}: {detail}", file=stream)

    return on_event


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86_400 or seconds != seconds:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds (0-86400)")
    return seconds


def _waiting(seconds: float) -> None:
    print(
        f"camvault upload: another uploader holds the spool (e.g. `camvault run` still "
        f"shutting down); waiting for it … {seconds:.0f} s",
        file=sys.stderr,
        flush=True,
    )


def cmd_upload(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App

    stop = threading.Event()
    with App.open(settings) as app:
        app.own_spool(lock_timeout=args.lock_timeout, on_wait=_waiting)
        pipeline = app.pipeline(on_event=None if args.json else progress_printer())
        if args.once:
            tally = pipeline.drain(stop)
        else:
            _stop_on_signals(stop)
            print("camvault upload: running; Ctrl-C to stop", file=sys.stderr)
            tally = pipeline.run(stop, poll_seconds=settings.upload.poll_seconds)
        stats = app.spool.stats()
    data = {
        "committed": tally.committed,
        "bytes": tally.bytes,
        "failed_rounds": tally.failed_rounds,
        "deferred_commits": tally.deferred_commits,
        "conflicts": tally.conflicts,
        "last_error": tally.last_error,
        "pending": stats["pending"],
    }
    emit(
        args,
        data,
        lambda: print(
            f"committed {tally.committed} segment(s), {tally.bytes / 1e6:.1f} MB; "
            f"{stats['pending']} still pending"
            + (f"; last error: {tally.last_error}" if tally.last_error else "")
        ),
    )
    return EXIT_OK if stats["pending"] == 0 or not args.once else EXIT_PARTIAL


def _stop_on_signals(stop: threading.Event) -> None:
    import signal  # here: `ingest` sets no handlers

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.runner import Runner

    stop = threading.Event()
    _stop_on_signals(stop)
    return Runner(
        settings, demo=not args.no_demo, demo_segment_seconds=args.demo_segment_seconds
    ).run(stop)


def _watch(settings: Settings, args: argparse.Namespace) -> int:
    drops = {
        c.id: Path(c.drop_dir)
        for c in settings.cameras
        if c.drop_dir and c.enabled and (args.camera in (None, c.id))
    }
    if not drops:
        raise InputError(
            "no drop directories to watch: give cameras a drop_dir in the config"
            + (f" (camera {args.camera!r} has none)" if args.camera else "")
        )
    from camvault.app import App
    from camvault.ingest import DropWatcher

    stop = threading.Event()
    _stop_on_signals(stop)
    with App.open(settings) as app:
        app.register_cameras()

        def report(r: IngestResult) -> None:
            if r.segment:
                print(f"spooled    {r.source}  →  {r.segment.s3_key}", flush=True)
            else:
                print(f"quarantined {r.source}: {r.reason}", flush=True)

        watcher = DropWatcher(
            app.ingestor(),
            drops,
            settle_seconds=settings.spool.drop_settle_seconds,
            poll_seconds=settings.spool.drop_poll_seconds,
            on_result=report,
        )
        print("watching " + ", ".join(f"{k}={v}" for k, v in drops.items()), file=sys.stderr)
        watcher.run(stop)
    return EXIT_OK

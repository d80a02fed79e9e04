"""``camvault export``: one clip as an MP4 file, by the same code path as the API's
export jobs (request → job row → the clip spliced from the recordings' samples, or cut by
ffmpeg's stream copy when they do not qualify → S3 object under exports/; ``assembly``
says which). Runs the job in this process and writes the output file from the same
stream it uploads (no download of the object back); when a `serve` worker ran the job
instead, downloads the object. A progress bar on a terminal, ``--json`` for scripts."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from camvault.catalog.access import Identity
    from camvault.config import Settings
    from camvault.export.jobs import ExportJob, ExportRequests, ExportRunner
    from camvault.export.standalone import ExportConfig
from camvault.cli import EXIT_OK, EXIT_PARTIAL, emit, json_flag, parse_time
from camvault.errors import CamvaultError, ObjectArchived


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="export a camera's footage in a time range as one MP4")
    p.add_argument("--camera", required=True, help="camera id")
    p.add_argument("--start", required=True, type=parse_time, help="ISO 8601 with zone")
    p.add_argument("--end", required=True, type=parse_time, help="ISO 8601 with zone")
    p.add_argument("-o", "--output", required=True, type=Path, help="MP4 file to write")
    p.add_argument(
        "--user",
        help="export on behalf of this user: their export permission must cover the range "
        "and the job is theirs (default: the operator, unrestricted)",
    )
    json_flag(p)
    p.set_defaults(handler=cmd_export, fast=fast_export)


def _progress(enabled: bool) -> Any:
    last = [-1]

    def show(pct: float) -> None:
        if not enabled or int(pct) == last[0]:
            return
        last[0] = int(pct)
        width = 30
        done = int(width * pct / 100)
        sys.stderr.write(f"\rexporting [{'#' * done}{'.' * (width - done)}] {pct:5.1f}%")
        if pct >= 100:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def fast_export(args: argparse.Namespace) -> int | None:
    """The configuration validated in a child process (``export.standalone``): this
    process, which runs the whole job next to its ffmpeg, never imports pydantic. None
    (the child could not say, e.g. a config error): ``cmd_export`` after the usual
    in-process validation, which reports it."""
    from camvault.export.standalone import resolve

    cfg = resolve(args.config)
    return None if cfg is None else _export(cfg, args)


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.export.standalone import ExportConfig

    return _export(ExportConfig.from_settings(settings), args)


def _export(cfg: ExportConfig, args: argparse.Namespace) -> int:
    from camvault.catalog.access import AccessCatalog, Identity
    from camvault.catalog.connector import PsycopgConnector
    from camvault.export.jobs import ExportRequests
    from camvault.export.standalone import export_runner, export_store

    connector = PsycopgConnector(
        cfg.database_url,
        min_size=cfg.pool_min_size,
        max_size=cfg.pool_max_size,
        connect_timeout=cfg.connect_timeout_seconds,
        statement_timeout_ms=cfg.statement_timeout_ms,
    )
    try:
        who = None
        if args.user:
            u = AccessCatalog(connector).get_user(args.user)
            who = Identity(u.id, u.name, u.is_admin, 0)
        requests = ExportRequests(connector, max_minutes=cfg.max_export_minutes)
        try:
            job = requests.request(who, args.camera, args.start, args.end)
        except ObjectArchived as exc:
            ids = [r["id"] for r in exc.state.get("recordings", [])]  # type: ignore[attr-defined]
            raise CamvaultError(f"{exc} (recordings {ids}; `camvault restore request ID`)") from exc
        store = export_store(cfg)
        runner = export_runner(connector, store, cfg)
        show = _progress(not args.json and sys.stderr.isatty())
        part = args.output.with_name(f".{args.output.name}.part")
        try:
            job, teed = _run(runner, requests, who, job, show, part)
            if job.state != "done" or not job.s3_key:
                emit(args, _out(job, None), lambda: print(f"export {job.id} failed: {job.error}"))
                return EXIT_PARTIAL
            if teed and part.stat().st_size == job.size_bytes:
                os.replace(part, args.output)  # the object's bytes, written as uploaded
            else:  # a `serve` worker ran it: fetch the object
                _download(store.presign_get(job.s3_key, 3600), args.output, job.sha256 or "")
        finally:
            part.unlink(missing_ok=True)
        out = _out(job, args.output)
        emit(args, out, lambda: _human(job, args.output))
        return EXIT_OK
    finally:
        connector.close()


def _run(
    runner: ExportRunner,
    requests: ExportRequests,
    who: Identity | None,
    job: ExportJob,
    show: Any,
    part: Path,
) -> tuple[ExportJob, bool]:
    """Run the job here, writing the clip to ``part`` as it is uploaded (True: ``part``
    holds the finished object's bytes); if a `serve` worker claimed it first, wait for it —
    and take it over should that worker die (its heartbeat goes stale)."""
    teed = False
    while job.state in ("queued", "running"):
        claimed = runner.claim(job.id)
        if claimed is not None:
            # read back too: the parts are sent from this file (the page cache), so the
            # process holds no part buffers while ffmpeg runs (export.upload)
            with part.open("w+b") as f:
                ran = runner.run(claimed, show, tee=f, parts_from_tee=True)
            teed = ran.state == "done"
        else:
            teed = False
            time.sleep(0.5)
        job = requests.get(who, job.id)
    return job, teed


def _download(url: str, dest: Path, sha256: str) -> None:
    """Streamed to a temporary name, checked against the job's SHA-256, then renamed."""
    import urllib.request  # here: `camvault --help` and `ingest` need no HTTP client

    tmp = dest.with_name(f".{dest.name}.part")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as resp, tmp.open("wb") as f:
        while block := resp.read(1024 * 1024):
            digest.update(block)
            f.write(block)
    if sha256 and digest.hexdigest() != sha256:
        tmp.unlink()
        raise CamvaultError("downloaded clip does not match its SHA-256; try again")
    os.replace(tmp, dest)


def _out(job: ExportJob, path: Path | None) -> dict[str, Any]:
    data = asdict(job)
    data["output"] = str(path) if path else None
    return data


def _human(job: ExportJob, path: Path) -> None:
    assert job.actual_start is not None and job.actual_end is not None
    print(
        f"{path}: {job.size_bytes} bytes, {job.camera_id} "
        f"{job.actual_start.isoformat()} → {job.actual_end.isoformat()} "
        f"({job.cut}, assembled by {job.assembly}), sha256 {job.sha256}"
    )
    for g in job.gaps:
        print(f"  gap (no footage): {g['start']} → {g['end']}")

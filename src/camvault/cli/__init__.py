"""``camvault`` command line: one parser, sub-commands registered by the modules below.

Human output by default, ``--json`` where a script would read it. Exit codes: 0 ok;
1 the command ran but some items failed (e.g. files quarantined); 2 bad input or config;
3 a service (PostgreSQL, S3) is unavailable.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import pwd
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from camvault import __version__
from camvault.errors import (
    CamvaultError,
    ConfigError,
    InputError,
    NotFound,
    ServiceUnavailable,
    SpoolFull,
    StateConflict,
)

if TYPE_CHECKING:
    from camvault.config import Settings

# Start-up cost: `camvault --help` and a camera script's `camvault ingest FILE` must not pay
# for pydantic, boto3, psycopg or PyAV they do not use. So this package and every
# ``register()`` import only the standard library and light camvault modules (errors, keys,
# models); each handler imports what it needs (tests/unit/test_cli_startup.py).
Handler = Callable[["Settings", argparse.Namespace], int]
# A sub-command may also set ``fast=``: tried first, without loading ``Settings``; it
# returns an exit code, or None when the command needs the full settings after all.
FastHandler = Callable[[argparse.Namespace], "int | None"]

EXIT_OK, EXIT_PARTIAL, EXIT_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3


def emit(args: argparse.Namespace, data: Any, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON with --json, else call the human renderer."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=_json_default))
    else:
        human()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def os_actor() -> str:
    """``os:<login>`` of the effective user: who ran an operator command, for the audit log
    (the passwd entry, not $USER, which the caller sets)."""
    uid = os.geteuid()
    try:
        login = pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (containers)
        login = f"uid{uid}"
    return f"os:{login}"


def parse_time(value: str) -> datetime:
    """ISO 8601 with a zone (``Z`` or offset); a naive time is an error, not a guess."""
    try:
        dt = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-11-26T13:00:00Z)"
        ) from None
    if dt.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} has no time zone; add Z or an offset like +01:00"
        )
    return dt.astimezone(UTC)


# The module that registers each sub-command: ``main`` builds only the parsers of the one
# the command line names. Building all of them (~45 parsers) cost ~25 ms of every process,
# paid per segment by a camera script's `ingest` (tests/unit/test_cli_parser.py checks the
# index against the full parser).
COMMANDS: dict[str, str] = {
    "ingest": "archive",
    "upload": "archive",
    "run": "archive",
    "db": "admin",
    "cameras": "admin",
    "recordings": "admin",
    "status": "admin",
    "reconcile": "reconcile",
    "users": "access",
    "groups": "access",
    "grants": "access",
    "tokens": "access",
    "serve": "access",
    "record": "record",
    "bucket": "lifecycle",
    "retention": "lifecycle",
    "restore": "lifecycle",
    "nodes": "fleet",
    "export": "export",
}
# Modules under camvault.cli that register sub-commands (each has ``register(sub)``), in
# the order the full parser lists them.
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    """The parser with the sub-commands of ``modules`` (default: all of them)."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="camvault", description="Archive CCTV video to S3 with a PostgreSQL catalog."
    )
    parser.add_argument("--version", action="version", version=f"camvault {__version__}")
    parser.add_argument("--config", "-c", help="TOML config file (default: camvault.toml)")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in modules:
        importlib.import_module(f"camvault.cli.{name}").register(sub)
    return parser


def command_module(argv: Sequence[str]) -> str | None:
    """The module registering the sub-command that ``argv`` names after the global options
    of ``build_parser``, spelled out in full. None for anything else (no command, --help,
    --version, an unknown command, an abbreviated or combined option): those get the full
    parser, so its help and its errors (listing every command) stay as they are."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-c", "--config"):
            if i + 1 == len(argv) or argv[i + 1].startswith("-"):
                return None  # argparse's own error, from the full parser
            i += 2
        elif arg.startswith(("--config=", "-c")):
            i += 1  # the value attached: --config=X, -cX
        elif arg == "--verbose" or (len(arg) > 1 and arg.rstrip("v") == "-"):
            i += 1  # -v, -vv, ...
        else:
            return None if arg.startswith("-") else COMMANDS.get(arg)
    return None


def json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def main(argv: Sequence[str] | None = None) -> int:
    # `ingest` / `upload` allocate ~150k long-lived objects importing boto3, psycopg and
    # pydantic; with the default gen-0 threshold (700) the collector scans them over and
    # over, up to full collections (~0.04 s of start-up). So the threshold is raised from
    # the start (building the parser allocates too) and stays so for those commands; cycles
    # are still collected (gen 0 every 100k allocations), also in `upload` left running.
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000)
    try:
        module = command_module(sys.argv[1:] if argv is None else argv)
        parser = build_parser() if module is None else build_parser((module,))
        args = parser.parse_args(argv)
    except BaseException:  # --help, a bad command line: SystemExit
        gc.set_threshold(*thresholds)
        raise
    fast_exit = argv is None and getattr(args, "fast_exit", False)  # the process's command
    if not fast_exit:
        gc.set_threshold(*thresholds)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    code = _dispatch(args)
    if fast_exit:
        exit_now(code)
    return code


def exit_now(code: int) -> None:
    """End the process without the interpreter's teardown. Tearing down the modules and
    objects that boto3, psycopg and PyAV leave behind costs ~0.2 s of CPU — as much as
    uploading a few segments — and `ingest` / `upload --once` are run once per segment
    by camera scripts. Only for a command that has finished: its spool journal is
    committed and closed, its connections closed. Returns (normal exit) when another
    non-daemon thread still runs or the output cannot be flushed."""
    import threading

    if any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.current_thread()
    ):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # let the normal exit report it
    logging.shutdown()
    os._exit(code)


def _dispatch(args: argparse.Namespace) -> int:
    handler: Handler = args.handler
    fast: FastHandler | None = getattr(args, "fast", None)
    try:
        code = fast(args) if fast is not None else None
        if code is not None:
            return code
        from camvault.config import load_settings

        settings = load_settings(args.config)
        return handler(settings, args)
    except ConfigError as exc:
        print(f"camvault: config error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except (InputError, NotFound, StateConflict) as exc:  # the caller can fix it: exit 2
        print(f"camvault: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ServiceUnavailable as exc:
        print(f"camvault: unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except SpoolFull as exc:  # a resource that is out, like a server that is down
        print(f"camvault: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except CamvaultError as exc:
        print(f"camvault: error: {exc}", file=sys.stderr)
        return EXIT_PARTIAL
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

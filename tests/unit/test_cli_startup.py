"""Start-up cost of the command line, asserted by what is imported (never by time).

`camvault --help` must build its parser from the standard library alone, and a camera
script's `camvault ingest --camera CAM FILE…` for a configured camera must spool the files
without touching PostgreSQL or S3 — so without importing psycopg or boto3 at all. A new
sub-command module that imports a heavy module at the top fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.media import make_h264

HEAVY = (
    "pydantic",
    "pydantic_settings",
    "boto3",
    "botocore",
    "s3transfer",
    "psycopg",
    "psycopg_pool",
    "av",
)
NOT_FOR_INGEST = ("boto3", "botocore", "s3transfer", "psycopg", "psycopg_pool", "fastapi")
# once the config has been validated (camvault.config_snapshot), not even pydantic; nor
# what only other commands or rarer paths need: uuid (loads platform), the thread pool of
# a multi-file ingest, secrets and tempfile (random), camvault.acl
NOT_FOR_REPEATED_INGEST = (
    *NOT_FOR_INGEST,
    "pydantic",
    "pydantic_settings",
    "asyncio",
    "uuid",
    "platform",
    "concurrent",
    "secrets",
    "tempfile",
)
NOT_FOR_REPEATED_INGEST_CAMVAULT = ("camvault.acl",)
# `ingest` builds the parsers of cli.archive alone, not those of every command module
OTHER_CLI_MODULES = tuple(
    f"camvault.cli.{m}"
    for m in ("access", "admin", "export", "fleet", "lifecycle", "reconcile", "record")
)

_REPORT = (
    "import json, sys\n"
    "import camvault.cli\nfrom camvault.cli import main\n"
    "code = {call}\n"
    "mods = sorted({{m.split('.')[0] for m in sys.modules}})\n"
    "ours = sorted(m for m in sys.modules if m.startswith('camvault.'))\n"
    "print('@@' + json.dumps({{'code': code, 'modules': mods, 'camvault': ours}}))\n"
)


def _run(call: str, cwd: Path, env: dict[str, str] | None = None) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", _REPORT.format(call=call)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@")), None)
    assert line is not None, proc.stdout + proc.stderr
    return dict(json.loads(line[2:]))


def test_help_imports_no_heavy_module(tmp_path: Path) -> None:
    report = _run("camvault.cli.build_parser().format_help() and 0", tmp_path)
    loaded = set(report["modules"])  # type: ignore[call-overload]
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_ingest_of_a_configured_camera_needs_neither_catalog_nor_s3(tmp_path: Path) -> None:
    files = [make_h264(tmp_path / f"dock-2_20261120T08{m:02d}00Z.mp4") for m in (0, 5)]
    config = tmp_path / "camvault.toml"
    # nothing listens on port 9: a catalog lookup would fail (exit 3), not hang
    config.write_text(
        f'data_dir = "{tmp_path}"\n[database]\nurl = "postgresql://nobody@127.0.0.1:9/none"\n'
        f'[s3]\nendpoint_url = "http://127.0.0.1:9"\n[spool]\ndir = "{tmp_path}/spool"\n'
        f'[[cameras]]\nid = "dock-2"\ndrop_dir = "{tmp_path}/drop"\n'
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = ["-c", str(config), "ingest", "--camera", "dock-2", *map(str, files)]
    report = _run(f"main({argv!r})", tmp_path, env)
    assert report["code"] == 0
    loaded = set(report["modules"])  # type: ignore[call-overload]
    assert not loaded & set(NOT_FOR_INGEST), sorted(loaded & set(NOT_FOR_INGEST))
    ours = set(report["camvault"]) & set(OTHER_CLI_MODULES)  # type: ignore[call-overload]
    assert not ours, sorted(ours)
    assert "camvault.cli.archive" in report["camvault"]  # type: ignore[operator]
    assert not any(f.exists() for f in files)  # both moved into the spool
    spooled = sorted((tmp_path / "spool" / "segments" / "dock-2").iterdir())
    assert len(spooled) == 2
    # the next segment of the same camera script: the validated config is reused
    again = make_h264(tmp_path / "dock-2_20261120T081000Z.mp4")
    argv = ["-c", str(config), "ingest", "--camera", "dock-2", str(again)]
    report = _run(f"main({argv!r})", tmp_path, env)
    assert report["code"] == 0 and not again.exists()
    loaded = set(report["modules"])  # type: ignore[call-overload]
    assert not loaded & set(NOT_FOR_REPEATED_INGEST), sorted(loaded & set(NOT_FOR_REPEATED_INGEST))
    unwanted = (*NOT_FOR_REPEATED_INGEST_CAMVAULT, *OTHER_CLI_MODULES)
    ours = set(report["camvault"]) & set(unwanted)  # type: ignore[call-overload]
    assert not ours, sorted(ours)


def test_a_config_broken_after_a_good_ingest_still_fails_ingest(tmp_path: Path) -> None:
    config = tmp_path / "camvault.toml"
    good = f'[spool]\ndir = "{tmp_path}/spool"\n[[cameras]]\nid = "dock-2"\n'
    config.write_text(good)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    f = make_h264(tmp_path / "dock-2_20261120T080000Z.mp4")
    argv = ["-c", str(config), "ingest", "--camera", "dock-2", str(f)]
    assert _run(f"main({argv!r})", tmp_path, env)["code"] == 0
    config.write_text(good + "[upload]\nconcurrency = 0\n")
    g = make_h264(tmp_path / "dock-2_20261120T080500Z.mp4")
    argv = ["-c", str(config), "ingest", "--camera", "dock-2", str(g)]
    assert _run(f"main({argv!r})", tmp_path, env)["code"] == 2  # config error
    assert g.exists()


def test_ingest_of_an_unknown_camera_still_asks_the_catalog(tmp_path: Path) -> None:
    f = make_h264(tmp_path / "x_20261120T080000Z.mp4")
    config = tmp_path / "camvault.toml"
    config.write_text(
        '[database]\nurl = "postgresql://nobody@127.0.0.1:9/none"\nconnect_timeout_seconds = 1\n'
        f'[s3]\nendpoint_url = "http://127.0.0.1:9"\n[spool]\ndir = "{tmp_path}/spool"\n'
    )
    argv = ["-c", str(config), "ingest", "--camera", "not-configured", str(f)]
    report = _run(f"main({argv!r})", tmp_path)
    assert report["code"] == 3  # catalog unavailable: the file stays where it is
    assert f.exists()


def test_restore_tiers_spelled_out_in_the_cli_match() -> None:
    from camvault.cli.lifecycle import TIERS as CLI_TIERS
    from camvault.restore import TIERS

    assert CLI_TIERS == TIERS


def test_permissions_spelled_out_in_the_cli_match() -> None:
    from camvault.acl import Permission
    from camvault.cli.access import PERMISSIONS

    assert list(PERMISSIONS) == [m.label for m in Permission]


def test_a_fed_export_ffmpeg_is_started_without_the_recorder_or_pyav() -> None:
    # the feed's ffmpeg gets PR_SET_PDEATHSIG; that helper once came from the recorder
    # package, which loads PyAV: ~22 MB more in an export job that never decodes
    code = (
        "import sys\nfrom camvault.export import media\n"
        "media._die_with_parent()\n"
        "print(sorted(m for m in sys.modules if m == 'av' or m.startswith('camvault.recorder')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr

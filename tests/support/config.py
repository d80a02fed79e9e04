"""A minimal ``camvault.toml`` for CLI tests: database, S3 and spool of a ``Settings``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_cli_config(settings: Any, path: Path) -> Path:
    path.write_text(
        f'[database]\nurl = "{settings.database.url}"\n[s3]\nbucket = "{settings.s3.bucket}"\n'
        f'endpoint_url = "{settings.s3.endpoint_url}"\naddressing_style = "path"\n'
        f'[spool]\ndir = "{settings.spool.dir}"\n'
    )
    return path
